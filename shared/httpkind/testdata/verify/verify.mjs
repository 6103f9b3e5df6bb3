// Reads JSON lines {id, timestamp, signature, body_base64} on stdin and
// prints "ok" or "refused: <why>" for each, verifying with the
// standardwebhooks library and the secret in WEBHOOK_SECRET.
import { Webhook } from "standardwebhooks";
import { createInterface } from "node:readline";

const wh = new Webhook(process.env.WEBHOOK_SECRET);
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const m = JSON.parse(line);
  try {
    wh.verify(Buffer.from(m.body_base64, "base64"), {
      "webhook-id": m.id,
      "webhook-timestamp": m.timestamp,
      "webhook-signature": m.signature,
    }, { jsonParse: false });
    console.log("ok");
  } catch (e) {
    console.log("refused: " + e.message);
  }
}
