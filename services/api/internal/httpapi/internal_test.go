package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

func TestRecoverPanics(t *testing.T) {
	t.Parallel()
	boom := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := observe(newHTTPMetrics(nil), slog.New(slog.DiscardHandler), recoverPanics(boom))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/stats", nil))
	var body problem
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 500 || body.Error == "" {
		t.Fatalf("panic answered %d %s, want 500 with a JSON error", rec.Code, rec.Body)
	}
	if body.Error != "internal error" {
		t.Errorf("error = %q, want the panic value kept out of the response", body.Error)
	}
}

func TestParseTokens(t *testing.T) {
	t.Parallel()
	good, err := ParseTokens(" a1:rw, b:c:ro ,")
	if err != nil || len(good) != 2 || good[0] != (Token{"a1", ScopeWrite}) || good[1] != (Token{"b:c", ScopeRead}) {
		t.Fatalf("ParseTokens = %v, %v; want a1 rw and b:c ro", good, err)
	}
	if none, err := ParseTokens(""); err != nil || len(none) != 0 {
		t.Fatalf("ParseTokens(\"\") = %v, %v; want none", none, err)
	}
	for _, bad := range []string{"secret", "secret:admin", ":rw", "a b:rw", "x:rw,x:ro"} {
		if _, err := ParseTokens(bad); err == nil {
			t.Errorf("ParseTokens(%q) succeeded, want an error", bad)
		}
	}
	if s := (Token{"hunter2", ScopeRead}).String(); s != "token(ro)" {
		t.Errorf("Token.String() = %q, want the secret hidden", s)
	}
}

// TestServerDrain: once the context ends, Ready fails at once while the
// listener keeps answering for the drain delay; then Run returns nil.
func TestServerDrain(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	s := NewServer(ok, db.Pool, ServerConfig{DrainDelay: 500 * time.Millisecond, ShutdownTimeout: time.Second})
	if err := s.Ready(context.Background()); err == nil {
		t.Fatal("ready before serving")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	waitFor(t, func() bool { return s.Ready(context.Background()) == nil })

	stopped := time.Now()
	cancel()
	waitFor(t, func() bool { return s.Ready(context.Background()) != nil })
	res, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil || res.StatusCode != 204 {
		t.Fatalf("request during drain: %v, %v; want it served", res, err)
	}
	res.Body.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if d := time.Since(stopped); d < 500*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Run returned %s after cancel, want after the 500ms drain delay and soon after", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A workflow's response carries its steps' results up to its budget and
// marks the rest omitted.
func TestWorkflowViewBoundsItsResults(t *testing.T) {
	result := []byte(`"` + strings.Repeat("r", 64<<10-2) + `"`)
	w := &jobqueue.Workflow{ID: 1, Name: "big"}
	for i := range 1000 {
		w.Steps = append(w.Steps, jobqueue.StepState{Name: fmt.Sprint("s", i), JobID: int64(i + 1), Result: result})
	}
	const budget = 4 << 20
	v, cut := viewWorkflow(w, budget)
	carried, omitted := 0, 0
	for _, s := range v.Steps {
		carried += len(s.Result)
		if s.ResultOmitted {
			omitted++
		}
	}
	if carried > budget || omitted != 1000-budget/len(result) || !cut {
		t.Fatalf("carried %d bytes of results, omitted %d (cut %v); want at most %d, the rest marked", carried, omitted, cut, budget)
	}
}

// A client that left before its answer is logged as 499 at info, not as a
// server error; a request line logs at most maxLoggedPath of its path.
func TestClientGoneAndLongPathsAreLoggedQuietly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/v1/jobs/"+strings.Repeat("x", 60<<10), nil).WithContext(ctx)
	w := httptest.NewRecorder()
	writeError(w, r, fmt.Errorf("list jobs: %w", context.Canceled))
	if w.Code != statusClientClosed {
		t.Fatalf("a departed client's request answered %d, want %d", w.Code, statusClientClosed)
	}
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	logRequest(ctx, log, r, &requestInfo{route: "unmatched", id: "x"}, w.Code, time.Millisecond)
	if line := buf.String(); len(line) > 1024 || !strings.Contains(line, `"level":"INFO"`) {
		t.Fatalf("request line: %d bytes: %.300s", len(line), line)
	}
}
