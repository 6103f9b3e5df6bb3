package httpkind_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
)

const (
	testKey  = "c3Bvb2wtaHR0cGtpbmQtdGVzdC1zZWFsLWtleS0zMmI=" // base64 of 32 bytes
	otherKey = "b3RoZXItaHR0cGtpbmQtdGVzdC1zZWFsLWtleS0zMmI="
)

// A sealed value opens only for its header name and host, with the key
// that sealed it or after a rotation that keeps that key second.
func TestSealerBindsNameAndHost(t *testing.T) {
	s, err := httpkind.NewSealer(testKey, "X-Api-Key")
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Seal("Authorization", "hooks.example", "Bearer s3cret")
	if err != nil || !httpkind.Sealed(v) || strings.Contains(v, "s3cret") {
		t.Fatalf("Seal: %q, %v", v, err)
	}
	if got, err := s.Open("authorization", "HOOKS.example.", v); err != nil || got != "Bearer s3cret" {
		t.Fatalf("Open: %q, %v", got, err)
	}
	for _, c := range []struct{ name, host string }{{"Cookie", "hooks.example"}, {"Authorization", "evil.example"}} {
		if _, err := s.Open(c.name, c.host, v); err == nil {
			t.Errorf("opened as %s for %s", c.name, c.host)
		}
	}
	rotated, _ := httpkind.NewSealer(otherKey+","+testKey, "")
	if got, err := rotated.Open("Authorization", "hooks.example", v); err != nil || got != "Bearer s3cret" {
		t.Errorf("after rotation: %q, %v", got, err)
	}
	other, _ := httpkind.NewSealer(otherKey, "")
	if _, err := other.Open("Authorization", "hooks.example", v); err == nil {
		t.Error("opened with another key")
	}
	if !s.Secret("x-api-key") || !s.Secret("COOKIE") || s.Secret("X-Trace") {
		t.Error("secret names: want Authorization, Cookie and the configured X-Api-Key only")
	}
	for _, bad := range []string{"short", "c3Bvb2w=", "not base64!"} {
		if _, err := httpkind.NewSealer(bad, ""); err == nil {
			t.Errorf("key %q taken", bad)
		}
	}
	if _, err := httpkind.NewSealer("", "Bad Name"); err == nil {
		t.Error("a secret header name with a space taken")
	}
}

// Secret header values reach the receiver but are stored only sealed: a
// Go client cannot enqueue a clear Authorization (Validate), a sealed one
// is opened just before sending, one sealed for another host does not
// open, and a configured secret header stored in clear is not sent.
func TestSecretHeadersStoredSealedAndSent(t *testing.T) {
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){"/hook": answer(http.StatusNoContent, nil, "")})
	s := httpkind.Settings{AllowedHosts: "127.0.0.1/32", HeaderKey: testKey, SecretHeaders: "X-Api-Key"}
	b := setup(t, s)
	ctx := context.Background()
	url := rc.srv.URL + "/hook"

	_, err := b.client.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "http", Payload: httpkind.Request{URL: url, Headers: map[string]string{"Authorization": "Bearer s3cret"}}})
	if !errors.Is(err, jobqueue.ErrInvalid) || !strings.Contains(err.Error(), "stored only sealed") {
		t.Fatalf("clear Authorization from a Go client: %v; want refused", err)
	}
	sealer, _ := httpkind.NewSealer(testKey, "X-Api-Key")
	req := httpkind.Request{URL: url, Headers: map[string]string{"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "X-Trace": "t1"}}
	if err := sealer.SealRequest(&req); err != nil {
		t.Fatal(err)
	}
	sent := b.enqueue(t, req, 1)
	// Sealed for another host: moved into a job to this receiver, it does not open.
	forOther := httpkind.Request{URL: "https://hooks.example/x", Headers: map[string]string{"Authorization": "Bearer s3cret"}}
	_ = sealer.SealRequest(&forOther)
	moved := b.enqueue(t, httpkind.Request{URL: url, Headers: forOther.Headers}, 1)
	clear := b.enqueue(t, httpkind.Request{URL: url, Headers: map[string]string{"X-Api-Key": "k3y"}}, 1)

	if j := b.final(t, sent); j.Status != jobqueue.StatusCompleted {
		t.Fatalf("sealed job: %s (%s)", j.Status, lastError(j))
	} else if strings.Contains(string(j.Payload), "s3cret") || strings.Contains(string(j.Payload), "k3y") {
		t.Fatalf("stored payload holds a secret: %s", j.Payload)
	}
	for id, part := range map[int64]string{moved: "the value of Authorization does not open", clear: "X-Api-Key is a secret header but its value is not sealed"} {
		if j := b.final(t, id); j.Status != jobqueue.StatusDead || !strings.Contains(lastError(j), part) || strings.Contains(lastError(j), "k3y") {
			t.Errorf("job %d: %s (%q); want dead with %q", id, j.Status, lastError(j), part)
		}
	}
	got := rc.requests("/hook")
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1 (only the job that opens)", len(got))
	}
	if h := got[0].header; h.Get("Authorization") != "Bearer s3cret" || h.Get("X-Api-Key") != "k3y" || h.Get("X-Trace") != "t1" {
		t.Errorf("receiver saw Authorization %q, X-Api-Key %q, X-Trace %q", h.Get("Authorization"), h.Get("X-Api-Key"), h.Get("X-Trace"))
	}
}
