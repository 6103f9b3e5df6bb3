package httpkind_test

import (
	"context"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobqueue/jobqueuetest"
	"github.com/spoolq/spool/shared/pgtest"
)

// A destination limit of 5/s (burst 1) over three workers holds: 40 jobs
// enqueued at once reach the receiver with no 1-second window holding
// more than 5 + 1 requests, and all complete.
func TestHostLimitHoldsAcrossWorkers(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){"/hook": answer(200, nil, `{"ok":true}`)})
	db := pgtest.New(t)
	s := httpkind.Settings{AllowedHosts: "127.0.0.1/32"}
	var clients []*jobqueue.Client
	var takes atomic.Int64
	for i := range 3 {
		kinds := jobqueue.NewKinds()
		client, err := jobqueue.NewClient(db.Pool, &jobqueue.ClientOpts{Kinds: kinds})
		if err != nil {
			t.Fatal(err)
		}
		if err := httpkind.AddLimited(kinds, s, &counting{Client: client, n: &takes}); err != nil {
			t.Fatal(err)
		}
		jobqueuetest.StartWorker(t, client, kinds, jobqueue.WorkerConfig{ID: "host-limit-" + string(rune('a'+i)),
			Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 8}}, PollInterval: 50 * time.Millisecond})
		clients = append(clients, client)
	}
	ctx := context.Background()
	const rate, burst, jobs = 5.0, 1, 40
	r := rate
	if _, err := clients[0].SetLimit(ctx, jobqueue.Limit{Scope: jobqueue.ScopeHost, Name: "127.0.0.1", RatePerSecond: &r, Burst: burst}); err != nil {
		t.Fatal(err)
	}
	params := make([]jobqueue.EnqueueParams, jobs)
	for i := range params {
		params[i] = jobqueue.EnqueueParams{Kind: "http", Payload: httpkind.Request{URL: rc.srv.URL + "/hook"}, MaxAttempts: 1}
	}
	start := time.Now()
	res, err := clients[0].EnqueueMany(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{client: clients[0]}
	for _, r := range res {
		if j := b.final(t, r.ID); j.Status != jobqueue.StatusCompleted {
			t.Fatalf("job %d is %s: %s", j.ID, j.Status, lastError(j))
		}
	}
	total := time.Since(start)
	got := rc.requests("/hook")
	if len(got) != jobs {
		t.Fatalf("receiver got %d requests, want %d", len(got), jobs)
	}
	at := make([]time.Time, len(got))
	for i, g := range got {
		at[i] = g.at
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	most := 0
	for i := range at {
		n := sort.Search(len(at), func(j int) bool { return !at[j].Before(at[i].Add(time.Second)) }) - i
		most = max(most, n)
	}
	t.Logf("%d requests over 3 workers in %s (first to last %s); most in any 1 s window: %d (limit %g/s, burst %d); %d token requests (the rest snoozed)",
		jobs, total.Round(time.Millisecond), at[len(at)-1].Sub(at[0]).Round(time.Millisecond), most, rate, burst, takes.Load())
	if most > int(rate)+burst {
		t.Errorf("%d requests in one 1 s window, want at most %d", most, int(rate)+burst)
	}
	// 40 tokens at 5/s with one in the bucket: not much faster than 7.8 s.
	if span := at[len(at)-1].Sub(at[0]); span < time.Duration(float64(jobs-burst-1)/rate*float64(time.Second)) {
		t.Errorf("40 requests within %s: faster than the rate", span)
	}
}

// counting counts the tokens a worker's http kind asks for.
type counting struct {
	*jobqueue.Client
	n *atomic.Int64
}

func (c *counting) TakeToken(ctx context.Context, scope, name string) (time.Duration, error) {
	c.n.Add(1)
	return c.Client.TakeToken(ctx, scope, name)
}
