package main_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/proctest"
)

// TestDeadLettersAndQueues runs fail jobs to death and back, and pauses a
// queue, with a worker.
func TestDeadLettersAndQueues(t *testing.T) {
	t.Parallel()
	s := setup(t, stackOpts{worker: true})
	c := s.cli

	for range 2 {
		c.run(t, "jobs", "enqueue", "--type", "fail", "--payload", `{"message": "boom"}`, "--max-attempts", "1").ok(t)
	}
	c.run(t, "jobs", "enqueue", "--type", "fail", "--payload", `{"message": "other"}`, "--max-attempts", "1", "--queue", "side").ok(t)
	var dead []jobJSON
	waitDead := func(n int) {
		t.Helper()
		proctest.Eventually(t, 20*time.Second, strconv.Itoa(n)+" dead jobs", func() bool {
			dead = decode[[]jobJSON](t, c.run(t, "dead", "list", "--type", "fail", "-o", "json").ok(t))
			return len(dead) == n
		})
	}
	// The worker serves the default queue only: the side queue's job waits.
	waitDead(2)
	if dead[0].Status != "dead" || dead[0].LastError == nil || *dead[0].LastError != "boom" {
		t.Fatalf("dead list -o json: %+v; want dead jobs with last_error boom", dead[0])
	}
	c.run(t, "dead", "list").ok(t).contains(t, "ID", "LAST ERROR", "fail", "dead", "boom")

	// Retry one by id, then the rest by type; they die again.
	r := c.run(t, "dead", "retry", "--id", strconv.FormatInt(dead[0].ID, 10)).ok(t).contains(t, "retried 1 dead jobs")
	waitDead(2)
	r = c.run(t, "dead", "retry", "--type", "fail", "--queue", "default", "-o", "json").ok(t)
	if got := decode[map[string]int64](t, r); got["retried"] != 2 {
		t.Fatalf("dead retry -o json: %v, want retried 2", got)
	}
	waitDead(2)

	// Retry and purge want a filter or --all; not both.
	c.run(t, "dead", "retry").want(t, 2).errContains(t, "--all")
	c.run(t, "dead", "purge").want(t, 2)
	c.run(t, "dead", "purge", "--all", "--type", "fail").want(t, 2)
	c.run(t, "dead", "purge", "--queue", "Not A Queue").want(t, 1).errContains(t, "HTTP 422")
	c.run(t, "dead", "purge", "--id", strconv.FormatInt(dead[0].ID, 10)).ok(t).contains(t, "deleted 1 dead jobs")
	if got := decode[map[string]int64](t, c.run(t, "dead", "purge", "--all", "-o", "json").ok(t)); got["deleted"] != 1 {
		t.Fatalf("dead purge --all -o json: %v, want deleted 1", got)
	}
	if got := decode[[]jobJSON](t, c.run(t, "dead", "list", "-o", "json").ok(t)); len(got) != 0 {
		t.Fatalf("dead list after purge --all: %d jobs, want none", len(got))
	}

	// Queues: listed with their counts; a paused queue's jobs wait.
	type queueJSON struct {
		Name   string           `json:"name"`
		Paused bool             `json:"paused"`
		Counts map[string]int64 `json:"counts"`
	}
	queues := func() map[string]queueJSON {
		out := map[string]queueJSON{}
		for _, q := range decode[[]queueJSON](t, c.run(t, "queues", "list", "-o", "json").ok(t)) {
			out[q.Name] = q
		}
		return out
	}
	if qs := queues(); qs["side"].Counts["pending"] != 1 || qs["default"].Paused {
		t.Fatalf("queues list -o json: %+v; want side with 1 pending job, default not paused", qs)
	}
	c.run(t, "queues", "pause", "default").ok(t).contains(t, "queue default paused")
	if qs := queues(); !qs["default"].Paused {
		t.Fatalf("after queues pause default: %+v", qs["default"])
	}
	c.run(t, "queues", "list").ok(t).contains(t, "NAME", "PAUSED", "PENDING", "default  true", "side")
	paused := decode[enqueueJSON](t, c.run(t, "jobs", "enqueue", "--type", "noop", "-o", "json").ok(t))
	time.Sleep(500 * time.Millisecond) // five poll intervals of the worker
	if j := decode[jobJSON](t, c.run(t, "jobs", "get", strconv.FormatInt(paused.Job.ID, 10), "-o", "json").ok(t)); j.Status != "pending" {
		t.Fatalf("a job in a paused queue is %s, want pending", j.Status)
	}
	if got := decode[map[string]any](t, c.run(t, "queues", "resume", "default", "-o", "json").ok(t)); got["paused"] != false || got["queue"] != "default" {
		t.Fatalf("queues resume -o json: %v", got)
	}
	waitStatus(t, c, paused.Job.ID, "completed")
	c.run(t, "queues", "pause", "Not A Queue").want(t, 1).errContains(t, "not a valid queue name", "HTTP 422")
	c.run(t, "queues", "pause").want(t, 2)
}

// TestLimitsSchedulesWorkflowsKinds needs no worker: the API accepts every
// kind (SPOOL_OPEN_KINDS=*), and nothing has to run.
func TestLimitsSchedulesWorkflowsKinds(t *testing.T) {
	t.Parallel()
	s := setup(t, stackOpts{apiEnv: []string{"SPOOL_OPEN_KINDS=*"}})
	c := s.cli

	// Limits.
	c.run(t, "limits", "set", "queue", "emails", "--max-running", "5").ok(t).contains(t, "queue emails: max 5 running")
	type limitJSON struct {
		Scope         string   `json:"scope"`
		Name          string   `json:"name"`
		MaxRunning    *int     `json:"max_running"`
		RatePerSecond *float64 `json:"rate_per_second"`
		Burst         int      `json:"burst"`
	}
	l := decode[limitJSON](t, c.run(t, "limits", "set", "type", "send_email", "--rate", "2.5", "--burst", "3", "-o", "json").ok(t))
	if l.Scope != "type" || l.RatePerSecond == nil || *l.RatePerSecond != 2.5 || l.Burst != 3 || l.MaxRunning != nil {
		t.Fatalf("limits set -o json: %+v", l)
	}
	c.run(t, "limits").ok(t).contains(t, "SCOPE", "NAME", "MAX RUNNING", "emails", "send_email", "2.5")
	if ls := decode[[]limitJSON](t, c.run(t, "limits", "list", "-o", "json").ok(t)); len(ls) != 2 {
		t.Fatalf("limits list -o json: %+v, want 2 limits", ls)
	}
	c.run(t, "limits", "set", "host", "example.com", "--max-running", "1").want(t, 1).errContains(t, "rate only", "HTTP 422")
	c.run(t, "limits", "set", "planet", "earth", "--rate", "1").want(t, 2).errContains(t, "scope must be one of")
	c.run(t, "limits", "set", "queue", "emails").want(t, 2)
	c.run(t, "limits", "delete", "queue", "emails").ok(t).contains(t, "deleted the limit of queue emails")
	c.run(t, "limits", "delete", "queue", "emails").want(t, 4).errContains(t, "no such limit")

	// Schedules.
	c.run(t, "schedules", "put", "nightly", "--spec", "0 3 * * *", "--timezone", "Europe/Paris", "--type", "report",
		"--payload", `{"kind": "daily"}`).ok(t).contains(t, "Name:", "nightly", "Europe/Paris", `{"kind":"daily"}`, "Next run:")
	type scheduleJSON struct {
		Name    string         `json:"name"`
		Spec    string         `json:"spec"`
		Type    string         `json:"type"`
		Queue   string         `json:"queue"`
		Payload map[string]any `json:"payload"`
		NextRun *time.Time     `json:"next_run"`
	}
	file := writeFile(t, "schedule.json", `{"spec": "@every 1h", "type": "noop", "queue": "low"}`)
	hb := decode[scheduleJSON](t, c.run(t, "schedules", "put", "heartbeat", "--file", file, "--spec", "@every 1m", "-o", "json").ok(t))
	if hb.Name != "heartbeat" || hb.Spec != "@every 1m" || hb.Queue != "low" || hb.NextRun == nil {
		t.Fatalf("schedules put --file -o json: %+v; want the file's schedule with the flag's spec", hb)
	}
	c.run(t, "schedules", "list").ok(t).contains(t, "NAME", "SPEC", "NEXT RUN", "nightly", "0 3 * * *", "heartbeat")
	if ss := decode[[]scheduleJSON](t, c.run(t, "schedules", "list", "-o", "json").ok(t)); len(ss) != 2 || ss[0].Name != "heartbeat" {
		t.Fatalf("schedules list -o json: %+v, want heartbeat and nightly", ss)
	}
	if got := decode[scheduleJSON](t, c.run(t, "schedules", "get", "nightly", "-o", "json").ok(t)); got.Payload["kind"] != "daily" {
		t.Fatalf("schedules get -o json: %+v", got)
	}
	c.run(t, "schedules", "put", "broken", "--spec", "every day", "--type", "noop").want(t, 1).errContains(t, "HTTP 422")
	c.run(t, "schedules", "put", "broken", "--type", "noop").want(t, 2).errContains(t, "--spec")
	c.run(t, "schedules", "delete", "nightly").ok(t).contains(t, "deleted schedule nightly")
	c.run(t, "schedules", "get", "nightly").want(t, 4).errContains(t, "no such schedule")
	c.run(t, "schedules", "delete", "nightly", "-o", "json").want(t, 4)

	// Workflows.
	wfFile := writeFile(t, "wf.json", `{"name": "signup", "steps": [
		{"name": "create", "type": "noop"},
		{"name": "welcome", "type": "send_email", "payload": {"to": "a@example.com"}, "depends_on": ["create"]}]}`)
	r := c.run(t, "workflows", "create", "--file", wfFile).ok(t).contains(t, "Name:", "signup", "STEP", "DEPENDS ON", "welcome", "create")
	type workflowJSON struct {
		ID     int64  `json:"id"`
		Name   string `json:"name"`
		Status string `json:"status"`
		Steps  []struct {
			Name   string `json:"name"`
			JobID  int64  `json:"job_id"`
			Status string `json:"status"`
		} `json:"steps"`
	}
	id := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[0])[1]
	wf := decode[workflowJSON](t, c.run(t, "workflows", "get", id, "-o", "json").ok(t))
	if strconv.FormatInt(wf.ID, 10) != id || len(wf.Steps) != 2 || wf.Steps[1].Status != "blocked" {
		t.Fatalf("workflows get %s -o json: %+v; want 2 steps, the second blocked", id, wf)
	}
	c.run(t, "workflows", "get", id).ok(t).contains(t, "Status:", "running", "blocked")
	c.run(t, "workflows", "cancel", id).ok(t).contains(t, "cancelled")
	c.run(t, "workflows", "get", "999999").want(t, 4).errContains(t, "workflow not found")
	c.run(t, "workflows", "create", "--file", writeFile(t, "cycle.json", `{"name": "loop", "steps": [
		{"name": "a", "type": "noop", "depends_on": ["b"]}, {"name": "b", "type": "noop", "depends_on": ["a"]}]}`)).
		want(t, 1).errContains(t, "HTTP 422")

	// Kinds: open kinds with jobs waiting.
	c.run(t, "jobs", "enqueue", "--type", "noop").ok(t)
	c.run(t, "kinds", "list").ok(t).contains(t, "NAME", "WORKERS", "WAITING", "noop", "(open)")
	type kindJSON struct {
		Name    string `json:"name"`
		Open    bool   `json:"open"`
		Waiting int64  `json:"waiting"`
	}
	ks := decode[[]kindJSON](t, c.run(t, "kinds", "list", "-o", "json").ok(t))
	if len(ks) == 0 || ks[0].Name != "noop" || !ks[0].Open {
		t.Fatalf("kinds list -o json: %+v; want the open kind noop", ks)
	}
}
