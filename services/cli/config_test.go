package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spoolq/spool/shared/proctest"
)

// TestConfigAndExitCodes: where the URL and token come from, that the
// token is never printed, and the exit codes of what is not the API's
// answer.
func TestConfigAndExitCodes(t *testing.T) {
	t.Parallel()
	s := setup(t, stackOpts{})
	bare := newCLI(t) // no URL, no token in the environment

	// Unreachable: exit 3.
	down := "http://" + proctest.FreeAddr(t)
	bare.run(t, "--api-url", down, "queues", "list").want(t, 3).errContains(t, "cannot reach the API at "+down)
	bare.runWith(t, "", []string{"SPOOL_API_URL=" + down}, "jobs", "get", "1").want(t, 3)

	// Usage: exit 2, before any request.
	for _, args := range [][]string{
		{"no-such-command"}, {"jobs", "no-such-command"}, {"jobs", "list", "--no-such-flag"}, {"jobs", "list", "--limit", "many"},
		{"jobs", "get"}, {"jobs", "get", "1", "2"}, {"-o", "yaml", "version"}, {"--api-url", "ftp://x", "queues", "list"},
		{"jobs", "enqueue", "--file", "a.json", "--batch", "b.jsonl"}, {"queues", "list", "extra"}, {"--timeout", "0s", "kinds", "list"},
	} {
		r := bare.runWith(t, "", []string{"SPOOL_API_URL=" + s.apiURL}, args...).want(t, 2)
		if r.stdout != "" || !strings.Contains(r.stderr, "spool: ") {
			t.Fatalf("spool %v: stdout %q, stderr %q; want only an error on stderr", args, r.stdout, r.stderr)
		}
	}
	// A group alone prints its help.
	bare.run(t, "jobs").ok(t).contains(t, "enqueue", "retry", "cancel")

	// No token: 401, exit 1; a wrong one is never printed, nor the right one.
	bare.run(t, "--api-url", s.apiURL, "queues", "list").want(t, 1).errContains(t, "HTTP 401")
	wrong := "wrong-token-that-must-not-be-printed-0123456789"
	r := bare.runWith(t, "", []string{"SPOOL_API_URL=" + s.apiURL, "SPOOL_API_TOKEN=" + wrong}, "jobs", "get", "1", "-o", "json").want(t, 1)
	for _, tok := range []string{wrong, rwToken} {
		if strings.Contains(r.stdout+r.stderr, tok) {
			t.Fatalf("a token was printed:\n%s%s", r.stdout, r.stderr)
		}
	}
	// A read-only token reads but cannot write: 403, exit 1.
	ro := []string{"SPOOL_API_URL=" + s.apiURL, "SPOOL_API_TOKEN=" + roToken}
	bare.runWith(t, "", ro, "queues", "list").ok(t)
	bare.runWith(t, "", ro, "queues", "pause", "default").want(t, 1).errContains(t, "HTTP 403")
	// A route the API does not have: 404 is exit 4 (a prefix path).
	bare.runWith(t, "", ro, "--api-url", s.apiURL+"/nothing", "queues", "list").want(t, 4)

	// The config file: the default place ($XDG_CONFIG_HOME/spool/config.json),
	// then --config; the environment wins over the file, a flag over both.
	xdg := t.TempDir()
	writeConfig := func(path string, cfg map[string]string) {
		t.Helper()
		b, _ := json.Marshal(cfg)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(filepath.Join(xdg, "spool", "config.json"), map[string]string{"api_url": s.apiURL, "token": rwToken})
	withXDG := []string{"XDG_CONFIG_HOME=" + xdg}
	bare.runWith(t, "", withXDG, "queues", "pause", "from-file").ok(t).contains(t, "queue from-file paused")
	bare.runWith(t, "", append(withXDG, "SPOOL_API_TOKEN="+roToken), "queues", "pause", "from-file").want(t, 1).errContains(t, "HTTP 403")
	bare.runWith(t, "", append(withXDG, "SPOOL_API_TOKEN="+roToken), "--token", rwToken, "queues", "resume", "from-file").ok(t)
	bare.runWith(t, "", append(withXDG, "SPOOL_API_URL="+down), "queues", "list").want(t, 3)

	other := filepath.Join(t.TempDir(), "other.json")
	writeConfig(other, map[string]string{"api_url": s.apiURL, "token": roToken})
	bare.runWith(t, "", withXDG, "--config", other, "queues", "pause", "x").want(t, 1).errContains(t, "HTTP 403")
	bare.run(t, "--config", filepath.Join(t.TempDir(), "missing.json"), "queues", "list").want(t, 2).errContains(t, "config file")
	writeConfig(other, map[string]string{"api_url": s.apiURL, "tokn": rwToken})
	bare.run(t, "--config", other, "queues", "list").want(t, 2).errContains(t, `unknown field "tokn"`)
	if err := os.Chmod(filepath.Join(xdg, "spool", "config.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	bare.runWith(t, "", withXDG, "queues", "list").ok(t).errContains(t, "readable by others")

	// version and completion need no API.
	bare.run(t, "version").ok(t).contains(t, "spool ")
	if v := decode[map[string]string](t, bare.run(t, "version", "-o", "json").ok(t)); v["version"] == "" || v["go"] == "" {
		t.Fatalf("version -o json: %v", v)
	}
	for shell, marker := range map[string]string{"bash": "complete -o default -F __start_spool spool", "zsh": "#compdef spool", "fish": "complete -c spool"} {
		bare.run(t, "completion", shell).ok(t).contains(t, marker)
	}
	// Dynamic completion asks the API for names.
	s.cli.run(t, "__complete", "queues", "pause", "").ok(t).contains(t, "from-file")
}

// TestProblemDetails: the RFC 9457 error shape the API is moving to, and
// what a proxy may answer, through the binary; and the headers it sends.
func TestProblemDetails(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s ct=%q auth=%v", r.Method, r.URL.Path, r.Header.Get("Content-Type"),
			r.Header.Get("Authorization") == "Bearer "+rwToken))
		mu.Unlock()
		problem := func(status int, body string) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
		switch r.URL.Path {
		case "/v1/jobs/1":
			problem(404, `{"type":"about:blank","title":"Not Found","status":404,"detail":"job not found","error":"job not found","request_id":"REQ1"}`)
		case "/v1/jobs/2/cancel":
			problem(409, `{"title":"Conflict","status":409,"detail":"cannot cancel this job","error":"cannot cancel this job","job_status":"completed","request_id":"REQ2"}`)
		case "/v1/queues":
			w.Header().Set("Retry-After", "5")
			problem(503, `{"title":"Service Unavailable","status":503,"detail":"database unavailable; retry later"}`)
		case "/v1/kinds":
			_, _ = io.WriteString(w, "<html>a login page</html>")
		default:
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}
	}))
	t.Cleanup(srv.Close)
	c := newCLI(t, "SPOOL_API_URL="+srv.URL, "SPOOL_API_TOKEN="+rwToken)

	c.run(t, "jobs", "get", "1").want(t, 4).errContains(t, "job not found [HTTP 404, request REQ1]")
	c.run(t, "jobs", "cancel", "2").want(t, 1).errContains(t, "cannot cancel this job (job status completed) [HTTP 409, request REQ2]")
	c.run(t, "queues", "list").want(t, 1).errContains(t, "database unavailable; retry later [HTTP 503]; retry after 5s")
	c.run(t, "kinds", "list").want(t, 1).errContains(t, "not JSON")
	c.run(t, "limits").want(t, 1).errContains(t, "Bad Gateway [HTTP 502]")

	mu.Lock()
	defer mu.Unlock()
	want := []string{`GET /v1/jobs/1 ct="" auth=true`, `POST /v1/jobs/2/cancel ct="application/json" auth=true`}
	if len(seen) < 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("requests: %q; want %q first", seen, want)
	}
}
