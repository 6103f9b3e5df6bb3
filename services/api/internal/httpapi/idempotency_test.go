package httpapi_test

import (
	"net/http"
	"testing"
)

// The Idempotency-Key header is the body's idempotency_key by another
// name: the second request with the same key gets the first's job.
func TestIdempotencyKeyHeader(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	first := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop"}`, `Idempotency-Key: "order-7"`), http.StatusCreated)
	if k := first.Job.IdempotencyKey; k == nil || *k != "order-7" {
		t.Fatalf("stored key = %v, want order-7 (the header's sf-string, unquoted)", k)
	}
	for _, tc := range []struct{ name, body, header string }{
		{"header again", `{"type":"noop"}`, `Idempotency-Key: "order-7"`},
		{"bare header value", `{"type":"noop"}`, `Idempotency-Key: order-7`},
		{"body key", `{"type":"noop","idempotency_key":"order-7"}`, ""},
		{"header and body agree", `{"type":"noop","idempotency_key":"order-7"}`, `Idempotency-Key: "order-7"`},
	} {
		got := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", tc.body, tc.header), http.StatusOK)
		if !got.Duplicate || got.Job.ID != first.Job.ID {
			t.Errorf("%s: job %d duplicate %v, want job %d as a duplicate", tc.name, got.Job.ID, got.Duplicate, first.Job.ID)
		}
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
}

func TestIdempotencyKeyHeaderRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, tc := range []struct{ name, path, body, header string }{
		{"differs from the body's", "/v1/jobs", `{"type":"noop","idempotency_key":"a"}`, `Idempotency-Key: "b"`},
		{"empty sf-string", "/v1/jobs", `{"type":"noop"}`, `Idempotency-Key: ""`},
		{"unterminated sf-string", "/v1/jobs", `{"type":"noop"}`, `Idempotency-Key: "abc`},
		{"bad escape", "/v1/jobs", `{"type":"noop"}`, `Idempotency-Key: "a\b"`},
		{"in Spool's namespace", "/v1/jobs", `{"type":"noop"}`, `Idempotency-Key: "spool:workflow:1:failed"`},
		{"on a batch", "/v1/jobs/batch", `{"jobs":[{"type":"noop"}]}`, `Idempotency-Key: "k"`},
		{"on a workflow", "/v1/workflows", `{"name":"w","steps":[{"name":"a","type":"noop"}]}`, `Idempotency-Key: "k"`},
	} {
		b := mustStatus[errBody](t, f.do("POST", tc.path, tc.body, tc.header), http.StatusUnprocessableEntity)
		if b.Field != "Idempotency-Key" && b.Field != "idempotency_key" {
			t.Errorf("%s: field %q, want the header named", tc.name, b.Field)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("%d jobs written, want none", n)
	}
}
