package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/proctest"
)

// A job that fails 40 times with a 1 MiB message keeps a bounded row: each
// message cut to MaxErrorBytes, the first HistoryFirst entries and the
// newest, HistoryKept in all, and the rest counted. (Before, such a job made
// a 40 MB row and about 1 GB of WAL.)
func TestFailingJobHistoryStaysBounded(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	huge := strings.Repeat("é", 512<<10) // 1 MiB, two bytes a character
	reg := NewKinds()
	reg.Handle("huge", func(context.Context, *Job) error { return errors.New(huge) }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	res, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "huge", MaxAttempts: 40,
		BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitStatus(t, res.Job.ID, StatusDead)
	if j.Attempts != 40 || len(j.Errors) != HistoryKept || j.ErrorsDropped != 40-HistoryKept {
		t.Fatalf("attempts %d, history %d entries, %d dropped; want 40, %d, %d", j.Attempts, len(j.Errors), j.ErrorsDropped, HistoryKept, 40-HistoryKept)
	}
	var got []int
	for _, e := range j.Errors {
		got = append(got, e.Attempt)
		if len(e.Error) > MaxErrorBytes || !strings.HasPrefix(e.Error, "éé") || !strings.Contains(e.Error, "bytes cut]") {
			t.Fatalf("attempt %d's message: %d bytes, %q…; want at most %d, cut on a character with a note", e.Attempt, len(e.Error), e.Error[:8], MaxErrorBytes)
		}
	}
	want := []int{1, 2, 3, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40}
	if !equalInts(got, want) {
		t.Fatalf("history keeps attempts %v, want %v", got, want)
	}
	var rowBytes, historyText int
	if err := b.db.Pool.QueryRow(ctx, `SELECT pg_column_size(j.*), octet_length(j.errors::text)
		FROM spool.spool_jobs j WHERE id = $1`, j.ID).Scan(&rowBytes, &historyText); err != nil {
		t.Fatal(err)
	}
	// 20 entries of at most 4 KiB and their fields, uncompressed.
	if historyText > HistoryKept*(MaxErrorBytes+200) || rowBytes > historyText+MaxErrorBytes {
		t.Fatalf("history is %d bytes of text, the row %d bytes stored", historyText, rowBytes)
	}
	t.Logf("after 40 attempts with a 1 MiB message: history %d bytes of text, row %d bytes stored", historyText, rowBytes)
}

// An error message with U+0000 or invalid UTF-8, which a text column
// refuses, is still recorded (the attempt's outcome is not lost).
func TestUnstorableErrorTextIsRecorded(t *testing.T) {
	b := setup(t)
	reg := NewKinds()
	reg.Handle("nul", func(context.Context, *Job) error { return errors.New("bad\x00byte \xff end") }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "nul", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitStatus(t, res.Job.ID, StatusDead)
	if want := "bad\uFFFDbyte \uFFFD end"; j.LastError == nil || *j.LastError != want || j.Errors[0].Error != want {
		t.Fatalf("last error %v, history %+v; want %q", j.LastError, j.Errors, want)
	}
}

// A handler that panics fails its attempt with the panic's value and stack
// (bounded like any message); the worker goes on running jobs.
func TestPanickingHandlerFailsItsAttemptOnly(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	reg := NewKinds()
	reg.Handle("panics", func(context.Context, *Job) error { panic("the handler blew up") }, nil)
	reg.Handle("fine", func(context.Context, *Job) error { return nil }, nil)
	b.runWorker(t, reg, WorkerConfig{})
	bad, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "panics", MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j := b.waitStatus(t, bad.Job.ID, StatusDead)
	for _, e := range j.Errors {
		if !strings.Contains(e.Error, "handler panic: the handler blew up") || !strings.Contains(e.Error, "goroutine") || len(e.Error) > MaxErrorBytes {
			t.Fatalf("attempt %d recorded %d bytes: %.200q; want the panic value and its stack", e.Attempt, len(e.Error), e.Error)
		}
	}
	if len(j.Errors) != 2 {
		t.Fatalf("history %d entries, want 2", len(j.Errors))
	}
	good, err := b.client.Enqueue(ctx, EnqueueParams{Kind: "fine"})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, good.Job.ID, StatusCompleted)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A page filtered by type examines at most ScanLimit jobs, and following
// the cursors still lists every match exactly once, newest first.
func TestListPageBoundsItsScanAndMissesNothing(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var want []int64
	for i := range 40 {
		kind := "a"
		if i%7 == 0 {
			kind = "b"
		}
		res, err := b.client.Enqueue(ctx, EnqueueParams{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if kind == "b" {
			want = append([]int64{res.Job.ID}, want...)
		}
	}
	var got []int64
	pages, short := 0, 0
	for after := int64(0); ; pages++ {
		jobs, next, err := b.client.ListPage(ctx, ListParams{Kind: "b", Limit: 2, ScanLimit: 10, After: after, Brief: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) < 2 && next != 0 {
			short++
		}
		for _, j := range jobs {
			got = append(got, j.ID)
		}
		if next == 0 {
			break
		}
		after = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if short == 0 {
		t.Fatalf("%d pages, none cut short by the scan limit: the bound was not exercised", pages)
	}
}

// A failure's message is logged as it is stored, at most MaxErrorBytes, so
// a handler's huge error does not turn into huge log lines on every attempt.
func TestFailureLogLinesAreBounded(t *testing.T) {
	b := setup(t)
	var logs proctest.Buffer
	reg := NewKinds()
	reg.Handle("huge", func(context.Context, *Job) error { return errors.New(strings.Repeat("x", 1<<20)) }, nil)
	b.runWorker(t, reg, WorkerConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	res, err := b.client.Enqueue(context.Background(), EnqueueParams{Kind: "huge", MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b.waitStatus(t, res.Job.ID, StatusDead)
	lines := strings.Split(logs.String(), "\n")
	failures := 0
	for _, l := range lines {
		if len(l) > MaxErrorBytes+1024 {
			t.Fatalf("a %d-byte log line: %.120s…", len(l), l)
		}
		if strings.Contains(l, "job failed, will retry") || strings.Contains(l, "job dead") {
			failures++
		}
	}
	if failures != 2 {
		t.Fatalf("%d failure lines, want 2 (the test saw no logs?)", failures)
	}
}
