package main_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// otelSpan is one exported span as the test's OTLP receiver decoded it.
type otelSpan struct {
	service, name     string
	trace, id, parent string
	attrs             map[string]string
}

// otlpReceiver is an OTLP/HTTP traces endpoint (protobuf) on loopback.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []otelSpan
}

func startOTLP(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		o.add(&req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.Resource.GetAttributes() {
			if a.Key == "service.name" {
				service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := otelSpan{service: service, name: s.Name, trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId),
					parent: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{}}
				for _, a := range s.Attributes {
					v := a.Value.GetStringValue()
					if v == "" {
						v = strings.TrimSpace(strings.TrimPrefix(a.Value.String(), "int_value:"))
					}
					sp.attrs[a.Key] = v
				}
				o.spans = append(o.spans, sp)
			}
		}
	}
}

func (o *otlpReceiver) find(service, name string) (otelSpan, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if s.service == service && s.name == name {
			return s, true
		}
	}
	return otelSpan{}, false
}

// One trace from the client's request to the handler, across the two
// processes, exported over OTLP by the real binaries: the API's server span
// continues the client's traceparent, the worker's job span is its child,
// and the http kind's request carries the job span's context onward.
func TestTraceJoinsAPIAndWorker(t *testing.T) {
	otlp := startOTLP(t)
	var mu sync.Mutex
	var got string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Get("traceparent")
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	db := pgtest.New(t)
	common := []string{"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t), "SPOOL_HTTP_ALLOWED_HOSTS=127.0.0.1/32",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.srv.URL, "OTEL_BSP_SCHEDULE_DELAY=100"}
	apiAddr := proctest.FreeAddr(t)
	proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), append(common, "SPOOL_HTTP_ADDR="+apiAddr, "SPOOL_AUTH_DISABLED=true"))
	proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/worker"), append(common[1:], "SPOOL_DATABASE_URL="+db.URL,
		"SPOOL_WORKER_ID=w0", "SPOOL_POLL_INTERVAL=200ms", "SPOOL_ADMIN_ADDR="+proctest.FreeAddr(t)))
	waitReady(t, "http://"+apiAddr+"/v1/stats")
	ctx := context.Background()
	proctest.Eventually(t, 20*time.Second, "the worker to publish the http kind", func() bool {
		var n int
		_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_kinds WHERE name = 'http'`).Scan(&n)
		return n == 1
	})

	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", "http://"+apiAddr+"/v1/jobs", strings.NewReader(`{"type":"http","payload":{"url":"`+rcv.URL+`/hook"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("enqueue: %d", resp.StatusCode)
	}

	var api, job otelSpan
	proctest.Eventually(t, 20*time.Second, "the API's and the worker's spans", func() bool {
		var ok1, ok2 bool
		api, ok1 = otlp.find("spool-api", "POST /v1/jobs")
		job, ok2 = otlp.find("spool-worker", "spool.job http")
		return ok1 && ok2
	})
	if api.trace != traceID || api.parent != clientSpan {
		t.Errorf("API span in trace %s with parent %s, want %s under the client's %s", api.trace, api.parent, traceID, clientSpan)
	}
	if job.trace != traceID || job.parent != api.id {
		t.Errorf("job span in trace %s with parent %s, want %s under the API's span %s", job.trace, job.parent, traceID, api.id)
	}
	for k, want := range map[string]string{"spool.job.kind": "http", "spool.job.queue": "default", "spool.job.attempt": "1", "spool.job.outcome": "completed"} {
		if job.attrs[k] != want {
			t.Errorf("job span %s = %q, want %q (attributes %v)", k, job.attrs[k], want, job.attrs)
		}
	}
	if job.attrs["spool.job.id"] == "" {
		t.Errorf("job span without spool.job.id: %v", job.attrs)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "00-" + traceID + "-" + job.id + "-01"; got != want {
		t.Errorf("the receiver got traceparent %q, want %q (the job span's)", got, want)
	}
}
