package main_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/proctest"
)

type jobJSON struct {
	ID             int64          `json:"id"`
	Type           string         `json:"type"`
	Queue          string         `json:"queue"`
	Status         string         `json:"status"`
	Priority       int            `json:"priority"`
	Attempts       int            `json:"attempts"`
	IdempotencyKey *string        `json:"idempotency_key"`
	Payload        map[string]any `json:"payload"`
	LastError      *string        `json:"last_error"`
}

type enqueueJSON struct {
	Job       jobJSON `json:"job"`
	Duplicate bool    `json:"duplicate"`
}

type batchJSON struct {
	ID        int64 `json:"id"`
	Duplicate bool  `json:"duplicate"`
}

// waitStatus polls `spool jobs get` until the job is in status.
func waitStatus(t *testing.T, c *cli, id int64, status string) jobJSON {
	t.Helper()
	var j jobJSON
	proctest.Eventually(t, 20*time.Second, fmt.Sprintf("job %d %s", id, status), func() bool {
		j = decode[jobJSON](t, c.run(t, "jobs", "get", strconv.FormatInt(id, 10), "-o", "json").ok(t))
		return j.Status == status
	})
	return j
}

func TestJobs(t *testing.T) {
	t.Parallel()
	s := setup(t, stackOpts{worker: true})
	c := s.cli

	// One job from flags, as a table and as JSON; its key makes the
	// second enqueue a duplicate.
	r := c.run(t, "jobs", "enqueue", "--type", "noop", "--payload", `{"seq": 1}`, "--queue", "default",
		"--priority", "5", "--idempotency-key", "k1").ok(t).contains(t, "ID", "DUPLICATE", "noop", "default", "false")
	first := decode[enqueueJSON](t, c.run(t, "jobs", "enqueue", "--type", "noop", "--payload", `{"seq": 1}`,
		"--idempotency-key", "k1", "-o", "json").ok(t))
	if !first.Duplicate || first.Job.Type != "noop" || first.Job.Priority != 5 || !strings.Contains(r.stdout, strconv.FormatInt(first.Job.ID, 10)) {
		t.Fatalf("second enqueue with key k1: %+v; want the first job (%s) as a duplicate", first, r.stdout)
	}
	done := waitStatus(t, c, first.Job.ID, "completed")
	if done.Payload["seq"] != float64(1) || done.IdempotencyKey == nil || *done.IdempotencyKey != "k1" {
		t.Fatalf("jobs get -o json: %+v; want payload seq 1 and key k1", done)
	}
	c.run(t, "jobs", "get", strconv.FormatInt(first.Job.ID, 10)).ok(t).
		contains(t, "Status:", "completed", "Payload:", `{"seq":1}`, "Idempotency key:", "k1")

	// A completed job cannot be cancelled: 409, exit 1.
	c.run(t, "jobs", "cancel", strconv.FormatInt(first.Job.ID, 10)).want(t, 1).
		errContains(t, "cannot cancel a completed job", "HTTP 409")

	// A delayed job is cancelled, then retried.
	delayed := decode[enqueueJSON](t, c.run(t, "jobs", "enqueue", "--type", "noop", "--delay", "1h", "-o", "json").ok(t))
	id := strconv.FormatInt(delayed.Job.ID, 10)
	if delayed.Job.Status != "pending" || delayed.Duplicate {
		t.Fatalf("delayed job: %+v, want pending", delayed)
	}
	c.run(t, "jobs", "cancel", id).ok(t).contains(t, id, "cancelled")
	if j := decode[jobJSON](t, c.run(t, "jobs", "retry", id, "-o", "json").ok(t)); j.Status != "pending" || j.ID != delayed.Job.ID {
		t.Fatalf("jobs retry -o json: %+v, want job %s pending", j, id)
	}

	// Not found: exit 4; a malformed id never reaches the API: exit 2.
	c.run(t, "jobs", "get", "999999999").want(t, 4).errContains(t, "job not found", "HTTP 404")
	c.run(t, "jobs", "retry", "999999999").want(t, 4)
	c.run(t, "jobs", "get", "abc").want(t, 2)

	// An unknown type: 422, exit 1, with the known types.
	c.run(t, "jobs", "enqueue", "--type", "no_such_kind").want(t, 1).
		errContains(t, `unknown job type "no_such_kind"`, "known types:", "noop", "HTTP 422")
	// A payload against its kind's schema: 422 naming the field.
	c.run(t, "jobs", "enqueue", "--type", "sleep", "--payload", `{"ms": -1}`).want(t, 1).errContains(t, "HTTP 422")
	// Checked before sending: exit 2.
	c.run(t, "jobs", "enqueue", "--type", "noop", "--payload", `[1]`).want(t, 2).errContains(t, "JSON object")
	c.run(t, "jobs", "enqueue", "--type", "noop", "--delay", "soon").want(t, 2)
	c.run(t, "jobs", "enqueue").want(t, 2).errContains(t, "--type")
	c.run(t, "jobs", "enqueue", "--type", "noop", "--delay", "1s", "--run-at", "2030-01-01T00:00:00Z").want(t, 2)

	// One job from a file, flags overriding its fields; and from stdin.
	file := writeFile(t, "job.json", `{"type": "noop", "payload": {"seq": 7}, "queue": "other", "priority": 1}`)
	fromFile := decode[enqueueJSON](t, c.run(t, "jobs", "enqueue", "--file", file, "--priority", "9", "-o", "json").ok(t))
	if fromFile.Job.Queue != "other" || fromFile.Job.Priority != 9 {
		t.Fatalf("enqueue --file: %+v; want queue other, priority 9 (the flag)", fromFile.Job)
	}
	c.runWith(t, `{"type": "noop", "queue": "stdin"}`, nil, "jobs", "enqueue", "--file", "-").ok(t).contains(t, "stdin")

	// A batch of JSON lines in chunks of 2 (blank lines skipped).
	batch := writeFile(t, "jobs.jsonl", "{\"type\":\"noop\",\"payload\":{\"seq\":1}}\n\n{\"type\":\"noop\",\"payload\":{\"seq\":2}}\n"+
		"{\"type\":\"noop\",\"queue\":\"bulk\"}\n{\"type\":\"noop\",\"queue\":\"bulk\"}\n{\"type\":\"noop\",\"queue\":\"bulk\"}\n")
	ids := decode[[]batchJSON](t, c.run(t, "jobs", "enqueue", "--batch", batch, "--chunk-size", "2", "-o", "json").ok(t))
	if len(ids) != 5 {
		t.Fatalf("batch of 5 lines: %d results, want 5", len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i].ID <= ids[i-1].ID || ids[i].Duplicate {
			t.Fatalf("batch results %+v: want new jobs in input order", ids)
		}
	}
	c.run(t, "jobs", "enqueue", "--batch", batch, "--queue", "override").ok(t).contains(t, "LINE", "ID", "DUPLICATE", "\n6 ")
	// Line 5 refused: the chunk of lines 1-3 is written, nothing from line 4 on.
	bad := writeFile(t, "bad.jsonl", "{\"type\":\"noop\"}\n{\"type\":\"noop\"}\n\n{\"type\":\"noop\"}\n{\"type\":\"no_such_kind\"}\n{\"type\":\"noop\"}\n")
	r = c.run(t, "jobs", "enqueue", "--batch", bad, "--chunk-size", "2", "-o", "json").want(t, 1).
		errContains(t, "line 5:", "unknown job type", "the 2 jobs before line 4 were enqueued")
	if got := decode[[]batchJSON](t, r); len(got) != 2 {
		t.Fatalf("partly refused batch: %d results printed, want the 2 enqueued", len(got))
	}
	// A line that is not JSON: nothing is sent.
	c.run(t, "jobs", "enqueue", "--batch", writeFile(t, "broken.jsonl", "{\"type\":\"noop\"}\nnot json\n")).want(t, 1).
		errContains(t, "line 2: not a JSON object")

	// Lists: table, JSON, filters, paging.
	list := decode[[]jobJSON](t, c.run(t, "jobs", "list", "--queue", "bulk", "-o", "json").ok(t))
	if len(list) != 3 || list[0].Queue != "bulk" || list[0].ID < list[2].ID {
		t.Fatalf("jobs list --queue bulk: %+v; want the batch's 3 bulk jobs, newest first", list)
	}
	c.run(t, "jobs", "list", "--queue", "bulk").ok(t).contains(t, "ID", "TYPE", "QUEUE", "STATUS", "bulk")
	r = c.run(t, "jobs", "list", "--limit", "2").ok(t).errContains(t, "more jobs: --after")
	if rows := strings.Count(strings.TrimSpace(r.stdout), "\n"); rows != 2 {
		t.Fatalf("jobs list --limit 2: %d rows, want 2:\n%s", rows, r.stdout)
	}
	all := decode[[]jobJSON](t, c.run(t, "jobs", "list", "--all", "-o", "json").ok(t))
	paged := decode[[]jobJSON](t, c.run(t, "jobs", "list", "--limit", "1000", "--include", "payload", "-o", "json").ok(t))
	if len(all) < 15 || len(all) != len(paged) || paged[len(paged)-1].Payload == nil {
		t.Fatalf("jobs list --all: %d jobs, --limit 1000: %d; want the same, at least 15, with payloads in the second", len(all), len(paged))
	}
	pending := decode[[]jobJSON](t, c.run(t, "jobs", "list", "--status", "pending", "--type", "noop", "-o", "json").ok(t))
	for _, j := range pending {
		if j.Status != "pending" {
			t.Fatalf("jobs list --status pending: a %s job", j.Status)
		}
	}
	c.run(t, "jobs", "list", "--status", "bogus").want(t, 1).errContains(t, "HTTP 400", "unknown status")
	if got := decode[[]jobJSON](t, c.run(t, "jobs", "list", "--type", "nothing_here", "-o", "json").ok(t)); len(got) != 0 {
		t.Fatalf("an empty list: %v, want []", got)
	}
}
