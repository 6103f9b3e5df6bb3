package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzNormalize checks the API's payload gate: no input panics; an unknown
// type is ErrUnknownType; an accepted payload was one JSON value (or
// nothing), and its canonical form is valid UTF-8 JSON that normalizes to
// itself and decodes strictly into the type's struct.
func FuzzNormalize(f *testing.F) {
	for _, typ := range Types() {
		f.Add(typ, []byte(`{}`))
	}
	for _, seed := range []struct{ typ, raw string }{
		{"noop", ``},
		{"noop", `null`},
		{"noop", ` {"seq": 7} `},
		{"noop", `{"seq": 1e2}`},
		{"noop", `{}}`},
		{"noop", `{} {}`},
		{"noop", `[]`},
		{"sleep", `{"ms": 250}`},
		{"sleep", `{"ms": -1}`},
		{"sleep", `{"ms": 1e309}`},
		{"sleep", `{"ms": 9223372036854775808}`},
		{"fail", `{"message": "boom", "times": 2}`},
		{"fail", `{"message": "a\u0000b"}`},
		{"fail", `{"message": "<script>&"}`},
		{"fail", `{"message": "\ud800"}`},
		{"fail", "{\"message\": \"\xff\"}"},
		{"send_email", `{"to": "a@example.com", "subject": "hi", "body": "x"}`},
		{"send_email", `{"to": "Robert'); DROP TABLE spool_jobs;-- <r@example.com>", "subject": "s"}`},
		{"send_email", `{"to": "a@example.com", "subject": "s", "to": "b@example.com"}`},
		{"generate_invoice", `{"order_id": 1, "amount_cents": 0}`},
		{"generate_invoice", `{"order_id": -0, "amount_cents": -1}`},
		{"sync_inventory", `{"sku": "A-1", "delta": -3}`},
		{"nope", `{}`},
		{"", `{}`},
	} {
		f.Add(seed.typ, []byte(seed.raw))
	}
	f.Fuzz(func(t *testing.T, typ string, raw []byte) {
		out, err := Normalize(typ, raw)
		if !Known(typ) {
			if !errors.Is(err, ErrUnknownType) {
				t.Fatalf("Normalize(%q) = %v, want ErrUnknownType", typ, err)
			}
			return
		}
		if errors.Is(err, ErrUnknownType) {
			t.Fatalf("known type %q: error %v claims it is unknown", typ, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && !json.Valid(trimmed) {
			t.Fatalf("accepted %q, which is not one JSON value", raw)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("canonical form %q is not valid UTF-8 JSON", out)
		}
		again, err := Normalize(typ, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("canonical form %s normalizes to %s, %v; want itself", out, again, err)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("canonical form %s is not an object: %v", out, err)
		}
	})
}
