package httpkind_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobqueue/jobqueuetest"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// testSecret is a 32-byte key in the form the Standard Webhooks libraries take.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("spool-httpkind-test-key-32-bytes"))

// received is one request as the receiver saw it.
type received struct {
	at     time.Time
	path   string
	method string
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on loopback; each path answers its nth
// request (from 1) with its route.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	routes map[string]func(n int, w http.ResponseWriter)
}

func newReceiver(t *testing.T, routes map[string]func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{routes: routes}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{at: time.Now(), path: r.URL.Path, method: r.Method, header: r.Header.Clone(), body: body})
		n := 0
		for _, g := range rc.got {
			if g.path == r.URL.Path {
				n++
			}
		}
		route := rc.routes[r.URL.Path]
		rc.mu.Unlock()
		if route == nil {
			http.Error(w, "no route", http.StatusTeapot)
			return
		}
		route(n, w)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests(path string) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, g := range rc.got {
		if path == "" || g.path == path {
			out = append(out, g)
		}
	}
	return out
}

type bundle struct {
	client *jobqueue.Client
}

// setup runs an in-process worker with the http kind configured by s,
// against a fresh database; retries wait 20…40 ms unless a job says
// otherwise.
func setup(t *testing.T, s httpkind.Settings) *bundle {
	t.Helper()
	t.Parallel()
	db := pgtest.New(t)
	kinds := jobqueue.NewKinds()
	if err := httpkind.Add(kinds, s); err != nil {
		t.Fatal(err)
	}
	client, err := jobqueue.NewClient(db.Pool, &jobqueue.ClientOpts{Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	jobqueuetest.StartWorker(t, client, kinds, jobqueue.WorkerConfig{ID: "httpkind-test",
		Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 8}}, PollInterval: 50 * time.Millisecond,
		Backoff: jobqueue.Backoff{Base: 40 * time.Millisecond, Max: time.Minute}})
	return &bundle{client: client}
}

func (b *bundle) enqueue(t *testing.T, req httpkind.Request, maxAttempts int) int64 {
	t.Helper()
	res, err := b.client.Enqueue(context.Background(), jobqueue.EnqueueParams{Kind: "http", Payload: req, MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatalf("enqueue %s: %v", req.URL, err)
	}
	return res.Job.ID
}

// final waits until job id is completed or dead.
func (b *bundle) final(t *testing.T, id int64) *jobqueue.Job {
	t.Helper()
	return jobqueuetest.WaitJob(t, b.client, id, 20*time.Second, func(j *jobqueue.Job) bool {
		return j.Status == jobqueue.StatusCompleted || j.Status == jobqueue.StatusDead
	})
}

func lastError(j *jobqueue.Job) string {
	if j.LastError == nil {
		return ""
	}
	return *j.LastError
}

func answer(status int, header map[string]string, body string) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// firstThen answers the first request with first and later ones with then.
func firstThen(first, then func(int, http.ResponseWriter)) func(int, http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) {
		if n == 1 {
			first(n, w)
			return
		}
		then(n, w)
	}
}

// Each status class does what the kind promises: 2xx completes with the
// response as result, 408/425/429/5xx retry, other 4xx and 3xx are dead at
// once with the status and a body excerpt.
func TestStatusClasses(t *testing.T) {
	ok := answer(http.StatusOK, map[string]string{"Content-Type": "text/plain"}, "done")
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){
		"/created":  answer(http.StatusCreated, map[string]string{"Content-Type": "application/json", "Location": "/things/7", "X-Other": "dropped"}, `{"id": 7}`),
		"/text":     ok,
		"/binary":   answer(http.StatusOK, nil, "\xff\xfe\x00"),
		"/flaky":    firstThen(answer(http.StatusInternalServerError, nil, "oops"), ok),
		"/408":      firstThen(answer(http.StatusRequestTimeout, nil, ""), ok),
		"/425":      firstThen(answer(http.StatusTooEarly, nil, ""), ok),
		"/429":      firstThen(answer(http.StatusTooManyRequests, nil, ""), ok), // no Retry-After: backoff
		"/down":     answer(http.StatusBadGateway, nil, "bad gateway"),
		"/missing":  answer(http.StatusNotFound, nil, "no such hook "+strings.Repeat("x", 5000)),
		"/conflict": answer(http.StatusConflict, nil, `{"error":"exists"}`),
		"/redirect": answer(http.StatusFound, map[string]string{"Location": "http://elsewhere.example/"}, ""),
	})
	b := setup(t, httpkind.Settings{AllowedHosts: "127.0.0.1/32"})
	url := func(p string) string { return rc.srv.URL + p }

	type want struct {
		status   jobqueue.Status
		requests int
		result   string // completed: the result's JSON
		errPart  string // dead: a part of the last error
	}
	cases := map[string]want{
		"/created":  {jobqueue.StatusCompleted, 1, `{"status":201,"headers":{"Content-Type":"application/json","Location":"/things/7"},"body":{"id":7}}`, ""},
		"/text":     {jobqueue.StatusCompleted, 1, `{"status":200,"headers":{"Content-Type":"text/plain"},"body_text":"done"}`, ""},
		"/binary":   {jobqueue.StatusCompleted, 1, `{"status":200,"headers":{"Content-Type":"application/octet-stream"},"body_base64":"//4A"}`, ""},
		"/flaky":    {jobqueue.StatusCompleted, 2, "", ""},
		"/408":      {jobqueue.StatusCompleted, 2, "", ""},
		"/425":      {jobqueue.StatusCompleted, 2, "", ""},
		"/429":      {jobqueue.StatusCompleted, 2, "", ""},
		"/down":     {jobqueue.StatusDead, 3, "", `HTTP 502: "bad gateway`},
		"/missing":  {jobqueue.StatusDead, 1, "", `HTTP 404: "no such hook xxx`},
		"/conflict": {jobqueue.StatusDead, 1, "", `HTTP 409: "{\"error\":\"exists\"}"`},
		"/redirect": {jobqueue.StatusDead, 1, "", `HTTP 302: redirect to "http://elsewhere.example/" not followed`},
	}
	ids := map[string]int64{}
	for p := range cases {
		ids[p] = b.enqueue(t, httpkind.Request{URL: url(p), Body: json.RawMessage(`{"n":1}`)}, 3)
	}
	for p, w := range cases {
		j := b.final(t, ids[p])
		n := len(rc.requests(p))
		if j.Status != w.status || n != w.requests || j.Attempts != w.requests {
			t.Errorf("%s: %s after %d attempts and %d requests (%s); want %s after %d", p, j.Status, j.Attempts, n, lastError(j), w.status, w.requests)
		}
		if w.result != "" {
			var got, exp any
			_ = json.Unmarshal(j.Result, &got)
			_ = json.Unmarshal([]byte(w.result), &exp)
			if fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Errorf("%s: result %s, want %s", p, j.Result, w.result)
			}
		}
		if w.errPart != "" && !strings.Contains(lastError(j), w.errPart) {
			t.Errorf("%s: last error %q, want it to contain %q", p, lastError(j), w.errPart)
		}
		if len(lastError(j)) > 1200 {
			t.Errorf("%s: last error of %d bytes, want the body excerpt capped", p, len(lastError(j)))
		}
	}
	// The default method is POST, with the JSON body (as PostgreSQL's
	// jsonb gives it back: spacing may differ) and its type.
	got := rc.requests("/created")[0]
	var body map[string]int
	if err := json.Unmarshal(got.body, &body); err != nil || body["n"] != 1 || got.method != "POST" || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("request: %s %q Content-Type %q; want POST {\"n\":1} application/json", got.method, got.body, got.header.Get("Content-Type"))
	}
}

// A 429 or 503 with Retry-After (seconds, or an HTTP date) is retried no
// earlier than it says, measured between the receiver's two requests,
// though the job's backoff alone would retry within 80 ms.
func TestRetryAfterIsHonoured(t *testing.T) {
	ok := answer(http.StatusNoContent, nil, "")
	var dateOnce sync.Once
	var date string
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){
		"/seconds": firstThen(answer(http.StatusTooManyRequests, map[string]string{"Retry-After": "2"}, "slow down"), ok),
		"/date": firstThen(func(n int, w http.ResponseWriter) {
			// 3 s ahead, truncated to the second by the format: at least 2 s
			dateOnce.Do(func() { date = time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) })
			answer(http.StatusServiceUnavailable, map[string]string{"Retry-After": date}, "")(n, w)
		}, ok),
	})
	b := setup(t, httpkind.Settings{AllowedHosts: "127.0.0.1/32"})
	ids := map[string]int64{}
	for _, p := range []string{"/seconds", "/date"} {
		ids[p] = b.enqueue(t, httpkind.Request{URL: rc.srv.URL + p}, 3)
	}
	for p, id := range ids {
		j := b.final(t, id)
		got := rc.requests(p)
		if j.Status != jobqueue.StatusCompleted || len(got) != 2 {
			t.Fatalf("%s: %s after %d requests (%s); want completed after 2", p, j.Status, len(got), lastError(j))
		}
		gap := got[1].at.Sub(got[0].at)
		t.Logf("%s: second request %s after the first", p, gap.Round(time.Millisecond))
		if gap < 2*time.Second {
			t.Errorf("%s: retried %s after a Retry-After of at least 2 s", p, gap)
		}
		if gap > 6*time.Second {
			t.Errorf("%s: retried only %s after, want soon after the Retry-After", p, gap)
		}
	}
}

// Every request is signed by the Standard Webhooks specification, as the
// standardwebhooks library from npm (run by node) checks it; the same
// webhook-id on every retry of a job; a tampered body, id or timestamp
// is refused by that library.
func TestSignaturesVerifiedByStandardWebhooks(t *testing.T) {
	verify := verifier(t)
	ok := answer(http.StatusOK, nil, "")
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){
		"/json":   ok,
		"/binary": ok,
		"/empty":  ok,
		"/retry":  firstThen(answer(http.StatusInternalServerError, nil, ""), ok),
	})
	b := setup(t, httpkind.Settings{AllowedHosts: "127.0.0.1/32", WebhookSecret: testSecret})
	ids := map[string]int64{
		"/json":   b.enqueue(t, httpkind.Request{URL: rc.srv.URL + "/json", Body: json.RawMessage(`{"order": 42, "note": "é ✓ <&>"}`)}, 3),
		"/binary": b.enqueue(t, httpkind.Request{URL: rc.srv.URL + "/binary", Method: "PUT", BodyBase64: base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff, '\n'})}, 3),
		"/empty":  b.enqueue(t, httpkind.Request{URL: rc.srv.URL + "/empty", Method: "GET"}, 3),
		"/retry":  b.enqueue(t, httpkind.Request{URL: rc.srv.URL + "/retry", Body: json.RawMessage(`[1,2,3]`)}, 3),
	}
	for p, id := range ids {
		if j := b.final(t, id); j.Status != jobqueue.StatusCompleted {
			t.Fatalf("%s: %s (%s)", p, j.Status, lastError(j))
		}
		for _, r := range rc.requests(p) {
			if got, want := r.header.Get("webhook-id"), httpkind.MessageID(id); got != want {
				t.Errorf("%s: webhook-id %q, want %q on every attempt", p, got, want)
			}
		}
	}
	if n := len(rc.requests("/retry")); n != 2 {
		t.Fatalf("/retry: %d requests, want 2", n)
	}
	if got := rc.requests("/binary")[0].body; !bytes.Equal(got, []byte{0, 1, 0xff, '\n'}) {
		t.Errorf("/binary: body %q, want the decoded bytes", got)
	}

	all := rc.requests("")
	var msgs []message
	for _, r := range all {
		m := message{ID: r.header.Get("webhook-id"), Timestamp: r.header.Get("webhook-timestamp"),
			Signature: r.header.Get("webhook-signature"), Body: r.body}
		msgs = append(msgs, m)
		tampered := m
		tampered.Body = append(bytes.Clone(r.body), ' ')
		otherID := m
		otherID.ID += "0"
		otherTime := m
		otherTime.Timestamp = fmt.Sprint(mustAtoi(t, m.Timestamp) + 1)
		msgs = append(msgs, tampered, otherID, otherTime)
	}
	verdicts := verify(msgs)
	for i, v := range verdicts {
		want := "ok"
		if i%4 != 0 {
			want = "refused"
		}
		if !strings.HasPrefix(v, want) {
			t.Errorf("message %d (%s %q, %s): verifier says %q, want %s", i, msgs[i].ID, msgs[i].Body, msgs[i].Signature, v, want)
		}
	}
	t.Logf("standardwebhooks verified %d signed requests and refused %d altered copies", len(all), 3*len(all))
}

// Destinations not allowed are refused when the worker connects, after
// resolution: an IP not in the list, a listed name that resolves to
// loopback, the cloud metadata address. The jobs are dead at once and no
// request reaches the receiver.
func TestDestinationsNotAllowedAreRefusedAtConnect(t *testing.T) {
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){"/x": answer(http.StatusOK, nil, "")})
	b := setup(t, httpkind.Settings{AllowedHosts: "example.com, localhost"})
	port := rc.srv.URL[strings.LastIndex(rc.srv.URL, ":")+1:]
	cases := map[string]string{
		"http://127.0.0.1:" + port + "/x":          "not in SPOOL_HTTP_ALLOWED_HOSTS",
		"http://localhost:" + port + "/x":          "special address",
		"http://169.254.169.254/latest/meta-data/": "not in SPOOL_HTTP_ALLOWED_HOSTS",
		"http://[::ffff:127.0.0.1]:" + port + "/x": "not in SPOOL_HTTP_ALLOWED_HOSTS",
		"http://0.0.0.0:" + port + "/x":            "not in SPOOL_HTTP_ALLOWED_HOSTS",
	}
	for u, why := range cases {
		j := b.final(t, b.enqueue(t, httpkind.Request{URL: u}, 3))
		if j.Status != jobqueue.StatusDead || j.Attempts != 1 || !strings.Contains(lastError(j), "refused") || !strings.Contains(lastError(j), why) {
			t.Errorf("%s: %s after %d attempts (%s); want dead after 1, refused: %s", u, j.Status, j.Attempts, lastError(j), why)
		}
	}
	if got := rc.requests(""); len(got) != 0 {
		t.Errorf("the receiver got %d requests, want none", len(got))
	}
}

// Without an allow list the kind is not registered.
func TestOffWithoutAllowList(t *testing.T) {
	t.Parallel()
	kinds := jobqueue.NewKinds()
	if err := httpkind.Add(kinds, httpkind.Settings{WebhookSecret: testSecret}); err != nil || len(kinds.Names()) != 0 {
		t.Fatalf("Add without SPOOL_HTTP_ALLOWED_HOSTS: %v, kinds %v; want nil and none", err, kinds.Names())
	}
	if err := (httpkind.Settings{AllowedHosts: "example.com", WebhookSecret: "secret"}).Check(); err == nil {
		t.Fatal("Check with a malformed secret: nil error")
	}
}

// message is one request as the verifier reads it.
type message struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
	Body      []byte `json:"body_base64"` // encoding/json writes []byte as base64
}

// verifier installs testdata/verify (the standardwebhooks npm package at
// the version its lock file pins) in a temporary directory and returns a
// function that runs it on messages, one verdict per message.
func verifier(t *testing.T) func([]message) []string {
	t.Helper()
	const how = "the signature test needs node and npm (Debian: apt-get install nodejs npm)"
	node := proctest.LookPath(t, "node", how)
	npm := proctest.LookPath(t, "npm", how)
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "verify.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "verify", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		proctest.Unavailable(t, fmt.Sprintf("npm ci of standardwebhooks failed (is the npm registry reachable?): %v\n%s", err, out))
	}
	return func(msgs []message) []string {
		t.Helper()
		var in bytes.Buffer
		enc := json.NewEncoder(&in)
		for _, m := range msgs {
			if err := enc.Encode(m); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(node, "verify.mjs")
		cmd.Dir, cmd.Stdin = dir, &in
		cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+testSecret)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node verify.mjs: %v\n%s", err, out)
		}
		var verdicts []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			verdicts = append(verdicts, sc.Text())
		}
		if len(verdicts) != len(msgs) {
			t.Fatalf("verifier gave %d verdicts for %d messages:\n%s", len(verdicts), len(msgs), out)
		}
		return verdicts
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("webhook-timestamp %q: %v", s, err)
	}
	return n
}

// Connection errors and timeouts are retried with backoff.
func TestNetworkErrorsRetry(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){
		"/slow": firstThen(func(int, http.ResponseWriter) { <-release }, answer(http.StatusOK, nil, "")),
	})
	t.Cleanup(func() { close(release) }) // before the server closes (cleanups run last first)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there now
	b := setup(t, httpkind.Settings{AllowedHosts: "127.0.0.1/32"})

	slow := b.final(t, b.enqueue(t, httpkind.Request{URL: rc.srv.URL + "/slow", Timeout: "300ms"}, 3))
	if slow.Status != jobqueue.StatusCompleted || slow.Attempts != 2 || len(slow.Errors) != 1 || !strings.Contains(slow.Errors[0].Error, "deadline exceeded") {
		t.Errorf("timed-out request: %s after %d attempts, errors %+v; want completed after 2, the first timed out", slow.Status, slow.Attempts, slow.Errors)
	}
	refused := b.final(t, b.enqueue(t, httpkind.Request{URL: closedURL + "/x"}, 2))
	if refused.Status != jobqueue.StatusDead || refused.Attempts != 2 || !strings.Contains(lastError(refused), "connection refused") {
		t.Errorf("closed port: %s after %d attempts (%s); want dead after 2, connection refused", refused.Status, refused.Attempts, lastError(refused))
	}
}
