package main_test

// The real spool binary against the real API binary (and a worker where a
// command needs jobs to run) on a fresh database.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

const (
	rwToken = "cli-test-rw-token-0123456789abcdef"
	roToken = "cli-test-ro-token-0123456789abcdef"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// cli runs the spool binary with a clean environment: none of the
// caller's SPOOL_* variables, and a config directory of its own.
type cli struct {
	bin string
	env []string
}

func newCLI(t *testing.T, env ...string) *cli {
	t.Helper()
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPOOL_") && !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			base = append(base, kv)
		}
	}
	base = append(base, "XDG_CONFIG_HOME="+t.TempDir())
	return &cli{bin: proctest.Build(t, "github.com/spoolq/spool/services/cli"), env: append(base, env...)}
}

// result is one run of spool.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// run runs spool with args.
func (c *cli) run(t *testing.T, args ...string) result {
	t.Helper()
	return c.runWith(t, "", nil, args...)
}

// runWith runs spool with stdin and extra environment.
func (c *cli) runWith(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append([]string(nil), c.env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run spool %v: %v", args, err)
	}
	return r
}

// want fails the test unless r exited with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("spool %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// ok is want(0).
func (r result) ok(t *testing.T) result {
	t.Helper()
	return r.want(t, 0)
}

// contains fails the test unless stdout holds every s.
func (r result) contains(t *testing.T, ss ...string) result {
	t.Helper()
	for _, s := range ss {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("spool %s: stdout lacks %q:\n%s", strings.Join(r.args, " "), s, r.stdout)
		}
	}
	return r
}

// errContains fails the test unless stderr holds every s.
func (r result) errContains(t *testing.T, ss ...string) result {
	t.Helper()
	for _, s := range ss {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("spool %s: stderr lacks %q:\n%s", strings.Join(r.args, " "), s, r.stderr)
		}
	}
	return r
}

// decode decodes stdout (-o json) into a T.
func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("spool %s: stdout is not the JSON expected (%v):\n%s", strings.Join(r.args, " "), err, r.stdout)
	}
	return v
}

// stack is a test's database, API and, when asked, worker.
type stack struct {
	db     *pgtest.DB
	apiURL string
	cli    *cli // with SPOOL_API_URL and the read-write token
}

type stackOpts struct {
	worker  bool     // run a worker with the diagnostic kinds (noop, sleep, fail)
	apiEnv  []string // more API settings
	workers []string // more worker settings
}

func setup(t *testing.T, o stackOpts) *stack {
	t.Helper()
	db := pgtest.New(t)
	env := append([]string{"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_HTTP_ADDR=127.0.0.1:0", "SPOOL_ADMIN_ADDR=127.0.0.1:0",
		"SPOOL_API_TOKENS=" + rwToken + ":rw," + roToken + ":ro", "SPOOL_STATS_MAX_AGE=0"}, o.apiEnv...)
	api := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), env)
	s := &stack{db: db, apiURL: "http://" + listening(t, api, "api listening")}
	s.cli = newCLI(t, "SPOOL_API_URL="+s.apiURL, "SPOOL_API_TOKEN="+rwToken)
	if o.worker {
		proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/worker"), append([]string{
			"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_ADMIN_ADDR=127.0.0.1:0", "SPOOL_DIAGNOSTIC_JOBS=true",
			"SPOOL_POLL_INTERVAL=100ms", "SPOOL_BACKOFF_BASE=10ms", "SPOOL_BACKOFF_MAX=50ms", "SPOOL_LOG_LEVEL=warn"}, o.workers...))
		proctest.Eventually(t, 20*time.Second, "the worker to publish the noop kind", func() bool {
			r := s.cli.run(t, "kinds", "list", "-o", "json")
			return r.code == 0 && strings.Contains(r.stdout, `"name": "noop"`) && !strings.Contains(r.stdout, `"workers": []`)
		})
	}
	return s
}

// listening waits for a process's "... listening" log line (info level)
// and returns its address.
func listening(t *testing.T, p *proctest.Proc, msg string) string {
	t.Helper()
	var addr string
	proctest.Eventually(t, 20*time.Second, msg, func() bool {
		if l := p.JSONLines(msg); len(l) > 0 {
			addr = fmt.Sprint(l[0]["addr"])
		}
		return addr != ""
	})
	return addr
}

// writeFile writes content to a file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
