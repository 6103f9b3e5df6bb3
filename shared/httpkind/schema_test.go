package httpkind_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

// The schema a worker publishes for the kind makes the API (which checks
// payloads against the catalog) refuse bad URLs, headers, base64 bodies
// and timeouts at enqueue, naming the field (a refused header name is
// reported on the payload: the validator places propertyNames failures
// there); good payloads pass.
func TestPublishedSchemaRefusesBadPayloads(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	kinds := jobqueue.NewKinds()
	if err := httpkind.Add(kinds, httpkind.Settings{AllowedHosts: "example.com"}); err != nil {
		t.Fatal(err)
	}
	client, err := jobqueue.NewClient(db.Pool, nil) // a client without the registry, as the API has
	if err != nil {
		t.Fatal(err)
	}
	w, err := jobqueue.NewWorker(client, kinds, jobqueue.WorkerConfig{ID: "publisher",
		Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 1}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(client, nil)
	for _, good := range []string{
		`{"url": "https://example.com/hook"}`,
		`{"url": "HTTP://example.com:8080/x?y=1#z", "method": "PUT", "headers": {"Authorization": "Bearer x", "X-Trace": "a b"}, "body": {"a": [1]}, "timeout": "1m30s"}`,
		`{"url": "https://example.com/", "body_base64": "AAEC/w=="}`,
	} {
		if err := cat.Validate(ctx, "http", []byte(good)); err != nil {
			t.Errorf("%s: %v, want accepted", good, err)
		}
	}
	for payload, field := range map[string]string{
		`{"url": "ftp://example.com/"}`:                                                "url",
		`{"url": "https://user:pw@example.com/"}`:                                      "url",
		`{"url": "https://example.com/a b"}`:                                           "url",
		`{"url": "https://example.com/` + strings.Repeat("a", 2048) + `"}`:             "url",
		`{"url": "https://example.com/", "method": "TRACE"}`:                           "method",
		`{"url": "https://example.com/", "headers": {"X-A": "a\r\nHost: evil"}}`:       "headers",
		`{"url": "https://example.com/", "headers": {"Transfer-Encoding": "chunked"}}`: "payload",
		`{"url": "https://example.com/", "headers": {"proxy-authorization": "x"}}`:     "payload",
		`{"url": "https://example.com/", "headers": {"HOST": "other"}}`:                "payload",
		`{"url": "https://example.com/", "headers": {"webhook-signature": "v1,x"}}`:    "payload",
		`{"url": "https://example.com/", "headers": {"X A": "b"}}`:                     "payload",
		`{"url": "https://example.com/", "headers": {"X-N": 1}}`:                       "headers",
		`{"url": "https://example.com/", "body_base64": "not base64!"}`:                "body_base64",
		`{"url": "https://example.com/", "timeout": "soon"}`:                           "timeout",
		`{"url": "https://example.com/", "extra": 1}`:                                  "",
	} {
		err := cat.Validate(ctx, "http", []byte(payload))
		var inv *jobqueue.InvalidError
		if !errors.As(err, &inv) || !strings.Contains(inv.Field, field) {
			t.Errorf("%.80s: %v, want refused naming %q", payload, err, field)
		}
	}
}
