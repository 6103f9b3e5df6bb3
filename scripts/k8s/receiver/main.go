// Command receiver is the webhook receiver of scripts/k8s/e2e.sh (make
// e2e-k8s): the http kind's jobs on the local cluster send their requests
// here. It verifies each request's Standard Webhooks signature
// (webhook-id, webhook-timestamp, webhook-signature: "v1,<base64 of
// HMAC-SHA256(key, id.timestamp.body)>", key = base64-decoded part of
// WEBHOOK_SECRET after "whsec_"), records it, answers 200, and reports
// what it got at GET /stats (JSON).
//
//	WEBHOOK_SECRET  whsec_<base64>, the secret the workers sign with (required)
//	LISTEN_ADDR     listen address (default :8080)
//
// GET /healthz answers 200 (readiness). Every other request is a webhook:
// it is recorded (webhook-id, method, path, signature ok or not) and
// answered 200 with {"received": "<webhook-id>"}, whatever its signature
// (the e2e checks the counts; a refusal would only make the job retry).
// Each request is also logged as one JSON line on stdout.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tolerance is how far webhook-timestamp may be from the receiver's clock
// (the Standard Webhooks libraries' default).
const tolerance = 5 * time.Minute

type record struct {
	ID        string    `json:"id"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	SigOK     bool      `json:"sig_ok"`
	Reason    string    `json:"reason,omitempty"` // why the signature did not verify
	Bytes     int       `json:"bytes"`
	At        time.Time `json:"at"`
	Timestamp int64     `json:"timestamp,omitempty"`
	Remote    string    `json:"remote"`
}

type stats struct {
	Requests int            `json:"requests"`
	SigOK    int            `json:"sig_ok"`
	SigBad   int            `json:"sig_bad"`
	Unsigned int            `json:"unsigned"` // no webhook-signature header (counted in sig_bad too)
	ByID     map[string]int `json:"by_id"`    // webhook-id -> requests
	Records  []record       `json:"records"`
}

type receiver struct {
	key []byte
	mu  sync.Mutex
	st  stats
}

func main() {
	secret := os.Getenv("WEBHOOK_SECRET")
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		log.Fatal("receiver: WEBHOOK_SECRET must be whsec_<base64>")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 24 || len(key) > 64 {
		log.Fatalf("receiver: WEBHOOK_SECRET: want base64 of 24-64 bytes after whsec_ (err %v, %d bytes)", err, len(key))
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	rc := &receiver{key: key, st: stats{ByID: map[string]int{}, Records: []record{}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /stats", rc.stats)
	mux.HandleFunc("/", rc.hook)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("{\"msg\":\"receiver listening\",\"addr\":%q}\n", addr)
	log.Fatal(srv.ListenAndServe())
}

// verify checks the Standard Webhooks headers against body; "" means ok.
func (rc *receiver) verify(h http.Header, body []byte, now time.Time) (ts int64, reason string) {
	id, tsStr, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsStr == "" || sigs == "" {
		return 0, "missing webhook-id, webhook-timestamp or webhook-signature"
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil {
		return 0, "webhook-timestamp not an integer"
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ts, fmt.Sprintf("webhook-timestamp %d is %s from now", ts, d.Round(time.Second))
	}
	mac := hmac.New(sha256.New, rc.key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	// The header may hold several space-separated signatures (key rotation).
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return ts, ""
		}
	}
	return ts, "no v1 signature matches"
}

func (rc *receiver) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	ts, reason := rc.verify(r.Header, body, now)
	rec := record{ID: r.Header.Get("webhook-id"), Method: r.Method, Path: r.URL.Path, SigOK: reason == "", Reason: reason,
		Bytes: len(body), At: now.UTC(), Timestamp: ts, Remote: r.RemoteAddr}
	rc.mu.Lock()
	rc.st.Requests++
	if rec.SigOK {
		rc.st.SigOK++
	} else {
		rc.st.SigBad++
		if r.Header.Get("webhook-signature") == "" {
			rc.st.Unsigned++
		}
	}
	rc.st.ByID[rec.ID]++
	rc.st.Records = append(rc.st.Records, rec)
	rc.mu.Unlock()
	line, _ := json.Marshal(struct {
		Msg string `json:"msg"`
		record
	}{"webhook", rec})
	fmt.Println(string(line))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"received": rec.ID})
}

func (rc *receiver) stats(w http.ResponseWriter, _ *http.Request) {
	rc.mu.Lock()
	b, err := json.Marshal(rc.st)
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
