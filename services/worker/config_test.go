package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/proctest"
)

// cleanEnv is PATH and env only: no SPOOL_* or DATABASE_URL of the caller.
func cleanEnv(env ...string) []string { return append([]string{"PATH=" + os.Getenv("PATH")}, env...) }

func TestWorkerHelpListsEveryVariable(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(proctest.Build(t, "github.com/spoolq/spool/services/worker"), "-h")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spool-worker -h: %v\n%s", err, out)
	}
	for _, want := range []string{"SPOOL_DATABASE_URL", "DATABASE_URL is read when", "SPOOL_QUEUES", "SPOOL_CONCURRENCY",
		"SPOOL_POLL_INTERVAL", "SPOOL_SHUTDOWN_TIMEOUT", "25s", "SPOOL_LEASE_DURATION", "SPOOL_DIAGNOSTIC_JOBS",
		"SPOOL_SCHEDULES_FILE", "SPOOL_ADMIN_ADDR", "SPOOL_RETENTION_DEAD", "SPOOL_SMTP_URL", "SPOOL_SMTP_FROM",
		"SPOOL_HTTP_ALLOWED_HOSTS", "SPOOL_WEBHOOK_SECRET"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("-h output lacks %q:\n%s", want, out)
		}
	}
}

// Every variable -h lists is documented in the README, by its name in
// backquotes (the configuration table, or the section of its kind).
func TestWorkerHelpVariablesAreInTheREADME(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(proctest.Build(t, "github.com/spoolq/spool/services/worker"), "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("spool-worker -h: %v\n%s", err, out)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`(?m)^SPOOL_[A-Z0-9_]+`).FindAll(out, -1)
	if len(names) < 20 {
		t.Fatalf("-h lists %d variables; the pattern no longer matches its output:\n%s", len(names), out)
	}
	for _, name := range names {
		if !bytes.Contains(readme, []byte("`"+string(name)+"`")) {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// Configured through the plain DATABASE_URL (as platforms set it), with the
// diagnostic kinds turned off (as the chart's default has them) and no
// demo: the worker runs no kind, leaves a noop job alone, says why, still
// registers itself, and SIGINT stops it cleanly.
func TestWorkerReadsDatabaseURLAndDropsDiagnosticTypes(t *testing.T) {
	b := setup(t)
	cmd := exec.Command(b.bin)
	cmd.Env = cleanEnv("DATABASE_URL="+b.db.URL, "SPOOL_DIAGNOSTIC_JOBS=false", "SPOOL_ADMIN_ADDR="+proctest.FreeAddr(t),
		"SPOOL_POLL_INTERVAL=100ms", "SPOOL_WORKER_ID=maintenance-only")
	var out proctest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	noop := b.enqueue(t, diagnostic.Noop{}, jobqueue.EnqueueParams{})
	proctest.Eventually(t, 20*time.Second, "the worker to register", func() bool {
		ws, err := b.client.Workers(context.Background())
		return err == nil && len(ws) == 1 && ws[0].ID == "maintenance-only" && ws[0].Live
	})
	time.Sleep(300 * time.Millisecond) // three polls
	if got := b.job(t, noop.ID); got.Status != jobqueue.StatusPending {
		t.Fatalf("noop job is %s with diagnostic types off, want pending (unclaimed)", got.Status)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit 10 s after SIGINT:\n%s", out.String())
	}
	logs := out.String()
	started := ""
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "worker started") {
			started = line
		}
	}
	if !strings.Contains(started, `"types":[]`) || !strings.Contains(logs, "no kinds to run") {
		t.Fatalf("worker started line %q: want no kinds, and a line saying so", started)
	}
	if !strings.Contains(logs, `"clean":true`) {
		t.Fatalf("no clean exit line after SIGINT:\n%s", logs)
	}
}

// SPOOL_SMTP_URL without SPOOL_SMTP_FROM, or a URL that cannot work, is a
// bad configuration (exit 2) whose message never shows the password.
func TestWorkerRefusesBadSMTPSettings(t *testing.T) {
	t.Parallel()
	bin := proctest.Build(t, "github.com/spoolq/spool/services/worker")
	for _, env := range [][]string{
		{"SPOOL_SMTP_URL=smtp://u:hunter2@127.0.0.1:2525"},
		{"SPOOL_SMTP_URL=ftp://u:hunter2@127.0.0.1:2525", "SPOOL_SMTP_FROM=noreply@example.com"},
		{"SPOOL_SMTP_URL=smtp://u:hunter2@127.0.0.1:2525", "SPOOL_SMTP_FROM=not an address"},
	} {
		cmd := exec.Command(bin)
		cmd.Env = cleanEnv(append(env, "SPOOL_DATABASE_URL=postgres://nobody@127.0.0.1:1/none")...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2\n%s", env, err, out)
		}
		if !bytes.Contains(out, []byte("SPOOL_SMTP_")) || bytes.Contains(out, []byte("hunter2")) {
			t.Errorf("%v: output should name the setting and not the password:\n%s", env, out)
		}
	}
}
