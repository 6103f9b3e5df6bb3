package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/postgres"
)

// TestBinary drives the built spool-api: configuration, migrate, refusing
// a wrong schema, serving, and a clean SIGTERM.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "spool-api")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("help lists every variable", func(t *testing.T) {
		t.Parallel()
		out, code := runBin(t, bin, nil, "-h")
		if code != 0 || !strings.Contains(out, "SPOOL_HTTP_ADDR") || !strings.Contains(out, ":8080") ||
			!strings.Contains(out, "SPOOL_DRAIN_DELAY") || !strings.Contains(out, "SPOOL_DATABASE_URL") {
			t.Fatalf("-h exit %d, output:\n%s\nwant exit 0 listing SPOOL_HTTP_ADDR with :8080", code, out)
		}
	})
	t.Run("invalid value names the variable", func(t *testing.T) {
		t.Parallel()
		out, code := runBin(t, bin, []string{"SPOOL_DATABASE_URL=postgres://x", "SPOOL_MAX_PAYLOAD_BYTES=abc"})
		if code == 0 || !strings.Contains(out, "SPOOL_MAX_PAYLOAD_BYTES") {
			t.Fatalf("exit %d, output %q; want a failure naming SPOOL_MAX_PAYLOAD_BYTES", code, out)
		}
	})
	t.Run("unknown argument", func(t *testing.T) {
		t.Parallel()
		if out, code := runBin(t, bin, nil, "serve-please"); code == 0 || !strings.Contains(out, "serve-please") {
			t.Fatalf("exit %d, output %q; want a usage error", code, out)
		}
	})
	t.Run("no auth configured", func(t *testing.T) {
		t.Parallel()
		out, code := runBin(t, bin, []string{"SPOOL_DATABASE_URL=postgres://127.0.0.1:1/x"})
		if code == 0 || !strings.Contains(out, "SPOOL_API_TOKENS") || !strings.Contains(out, "SPOOL_AUTH_DISABLED=true") {
			t.Fatalf("exit %d, output %q; want a refusal naming SPOOL_API_TOKENS and SPOOL_AUTH_DISABLED", code, out)
		}
	})
	t.Run("weak token refused", func(t *testing.T) {
		t.Parallel()
		const weak = "hunter2-hunter2"
		out, code := runBin(t, bin, []string{"SPOOL_DATABASE_URL=postgres://127.0.0.1:1/x", "SPOOL_API_TOKENS=" + weak + ":rw"})
		if code != 2 || !strings.Contains(out, "token 1 (rw) is 15 characters, want at least 32") {
			t.Fatalf("exit %d, output %q; want exit 2 naming the short token", code, out)
		}
		if strings.Contains(out, weak) {
			t.Fatalf("output %q prints the token", out)
		}
	})
	t.Run("migrate is idempotent", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		for i, want := range []string{"applied migrations", "schema already current"} {
			out, code := runBin(t, bin, dbEnv(db), "migrate")
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("migrate run %d: exit %d, output:\n%s\nwant exit 0 and %q", i+1, code, out, want)
			}
		}
		checkSchema(t, db)
	})
	t.Run("concurrent migrate", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				if out, code := runBin(t, bin, dbEnv(db), "migrate"); code != 0 {
					t.Errorf("concurrent migrate %d: exit %d, output:\n%s", i, code, out)
				}
			})
		}
		wg.Wait()
		checkSchema(t, db)
	})
	t.Run("refuses an unmigrated database", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		out, code := runBin(t, bin, append(dbEnv(db), "SPOOL_AUTH_DISABLED=true", "SPOOL_HTTP_ADDR=127.0.0.1:0", "SPOOL_ADMIN_ADDR=127.0.0.1:0"))
		if code == 0 || !strings.Contains(out, "schema is missing") || !strings.Contains(out, "spool-api migrate") {
			t.Fatalf("exit %d, output:\n%s\nwant a failure saying the schema is missing and to run spool-api migrate", code, out)
		}
	})
	t.Run("refuses a newer schema", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		stampNewerSchema(t, db)
		for _, args := range [][]string{nil, {"migrate"}} {
			out, code := runBin(t, bin, append(dbEnv(db), "SPOOL_AUTH_DISABLED=true", "SPOOL_HTTP_ADDR=127.0.0.1:0", "SPOOL_ADMIN_ADDR=127.0.0.1:0"), args...)
			if code == 0 || !strings.Contains(out, "schema is newer than this binary") {
				t.Fatalf("spool-api %v: exit %d, output:\n%s\nwant a failure saying the schema is newer", args, code, out)
			}
		}
	})
	t.Run("serves and stops on SIGTERM", func(t *testing.T) {
		t.Parallel()
		testServe(t, bin)
	})
}

func testServe(t *testing.T, bin string) {
	db := pgtest.New(t)
	const drain = 200 * time.Millisecond
	p := start(t, bin, append(dbEnv(db), "SPOOL_AUTH_DISABLED=true", "SPOOL_HTTP_ADDR=127.0.0.1:0",
		"SPOOL_ADMIN_ADDR=127.0.0.1:0", "SPOOL_DRAIN_DELAY="+drain.String()))
	admin, api := p.addr(t, "admin listening"), p.addr(t, "api listening")

	if code := get(t, "http://"+admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d, want 200; output:\n%s", code, p.output())
	}
	// A schema this binary does not know (an upgrade rolled back past a
	// migration) makes the replica unready; it is ready again once it is not.
	stampNewerSchema(t, db)
	if code := get(t, "http://"+admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a newer schema = %d, want 503", code)
	}
	if _, err := db.Pool.Exec(context.Background(), `DELETE FROM spool.spool_schema_migrations WHERE version > $1`, spoolSet(t).Latest()); err != nil {
		t.Fatal(err)
	}
	if code := get(t, "http://"+admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the schema is current again = %d, want 200", code)
	}
	publishDiagnostic(t, db)
	res, err := http.Post("http://"+api+"/v1/jobs", "application/json", strings.NewReader(`{"type":"noop"}`))
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/jobs: %v %v, want 201; output:\n%s", res, err, p.output())
	}
	res.Body.Close()

	stopped := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, drain+5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0; output:\n%s", code, p.output())
	}
	if d := time.Since(stopped); d < drain {
		t.Fatalf("exited %s after SIGTERM, before the %s drain delay", d, drain)
	}
	if out := p.output(); !strings.Contains(out, "draining") || !strings.Contains(out, "spool-api stopped") {
		t.Fatalf("output lacks the drain and stop lines:\n%s", out)
	}
}

// stampNewerSchema records a migration newer than this binary knows.
func stampNewerSchema(t *testing.T, db *pgtest.DB) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO spool.spool_schema_migrations (version, name) VALUES ($1, 'from the future')`,
		spoolSet(t).Latest()+1); err != nil {
		t.Fatal(err)
	}
}

// env is a clean environment: nothing of the caller's SPOOL_* or
// DATABASE_URL leaks into the binary.
func env(extra []string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "SPOOL_LOG_FORMAT=json"}, extra...)
}

func dbEnv(db *pgtest.DB) []string { return []string{"SPOOL_DATABASE_URL=" + db.URL} }

// runBin runs the binary to completion and returns its output and exit code.
func runBin(t *testing.T, bin string, extra []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env(extra)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func checkSchema(t *testing.T, db *pgtest.DB) {
	t.Helper()
	if err := spoolSet(t).Check(context.Background(), db.Pool); err != nil {
		t.Fatalf("schema after migrate: %v", err)
	}
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_schema_migrations`).Scan(&n); err != nil || n != len(spoolSet(t).List()) {
		t.Fatalf("%d migrations recorded (%v), want %d, each once", n, err, len(spoolSet(t).List()))
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// proc is a running binary whose JSON log lines are collected.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // output fully read

	mu    sync.Mutex
	lines []map[string]any
	raw   strings.Builder
}

func start(t *testing.T, bin string, extra []string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin), done: make(chan struct{})}
	p.cmd.Env = env(extra)
	out, w, err := os.Pipe() // stdout and stderr, in order
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
			_ = p.cmd.Wait()
		}
	})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.raw.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	return p
}

// addr waits for the log line msg and returns its "addr".
func (p *proc) addr(t *testing.T, msg string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.lines {
			if l["msg"] == msg {
				p.mu.Unlock()
				return fmt.Sprint(l["addr"])
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("exited before logging %q; output:\n%s", msg, p.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no %q log line within 15s; output:\n%s", msg, p.output())
	return ""
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("still running %s after SIGTERM; output:\n%s", d, p.output())
	}
	_ = p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

func spoolSet(t *testing.T) *postgres.Migrations {
	t.Helper()
	m, err := postgres.Spool("")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// publishDiagnostic publishes the diagnostic kinds, as a worker running
// them would.
func publishDiagnostic(t *testing.T, db *pgtest.DB) {
	t.Helper()
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	diagnostic.Add(kinds)
	if err := client.PublishKinds(context.Background(), "test", kinds); err != nil {
		t.Fatal(err)
	}
}
