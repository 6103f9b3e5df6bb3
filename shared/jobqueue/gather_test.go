package jobqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

// Concurrent callers share statements and commits, and each still gets its
// own exact answer: 400 enqueues from 64 goroutines, every idempotency key
// given twice, write 200 jobs in fewer transactions than jobs; each key's
// two callers get the same job, one of them as the duplicate; and a job
// the database refuses (a CHECK constraint the test adds) fails alone,
// its group written without it.
func TestGathererSharesCommitsAndKeepsAnswersExact(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE spool.spool_jobs ADD CONSTRAINT test_no_poison CHECK (payload->>'poison' IS NULL)`); err != nil {
		t.Fatal(err)
	}
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := client.NewGatherer(nil)
	const keys, poisoned = 200, 7
	type answer struct {
		key string
		res jobqueue.EnqueueResult
		err error
	}
	answers := make(chan answer, 2*keys+poisoned)
	work := make(chan func(), 2*keys+poisoned)
	for i := range keys {
		key := fmt.Sprintf("k-%d", i)
		for range 2 {
			work <- func() {
				res, err := g.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "noop", IdempotencyKey: key, Payload: map[string]int{"n": i}})
				answers <- answer{key, res, err}
			}
		}
	}
	for i := range poisoned {
		work <- func() {
			_, err := g.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "noop", Payload: map[string]int{"poison": i}})
			answers <- answer{"poison", jobqueue.EnqueueResult{}, err}
		}
	}
	close(work)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for f := range work {
				f()
			}
		})
	}
	wg.Wait()
	close(answers)

	byKey := map[string][]answer{}
	for a := range answers {
		byKey[a.key] = append(byKey[a.key], a)
	}
	for _, a := range byKey["poison"] {
		var pgErr *pgconn.PgError
		if !errors.As(a.err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("poisoned job: %v, want its own check violation", a.err)
		}
	}
	for i := range keys {
		key := fmt.Sprintf("k-%d", i)
		got := byKey[key]
		if len(got) != 2 || got[0].err != nil || got[1].err != nil {
			t.Fatalf("%s: answers %+v", key, got)
		}
		a, b := got[0].res, got[1].res
		if a.Job == nil || b.Job == nil || a.Job.ID != b.Job.ID || a.Duplicate == b.Duplicate || a.Job.IdempotencyKey == nil || *a.Job.IdempotencyKey != key {
			t.Errorf("%s: jobs %v/%v duplicate %v/%v; want one job, one of them the duplicate", key, a.Job, b.Job, a.Duplicate, b.Duplicate)
		}
	}
	var jobs, txs int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM spool.spool_jobs`).Scan(&jobs, &txs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d jobs written by %d transactions (%d callers)", jobs, txs, 2*keys+poisoned)
	if jobs != keys {
		t.Fatalf("%d jobs in the table, want %d", jobs, keys)
	}
	if txs >= jobs {
		t.Errorf("%d transactions for %d jobs: nothing was gathered", txs, jobs)
	}
}

// A lone caller is written at once, alone, and sees its job.
func TestGathererLoneCaller(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := client.NewGatherer(nil)
	res, err := g.Enqueue(context.Background(), jobqueue.EnqueueParams{Kind: "noop", Priority: 3})
	if err != nil || res.Job == nil || res.Job.Priority != 3 || res.Duplicate {
		t.Fatalf("Enqueue: %+v, %v", res, err)
	}
	if _, err := g.Enqueue(context.Background(), jobqueue.EnqueueParams{Kind: "no such kind!"}); !errors.Is(err, jobqueue.ErrInvalid) {
		t.Fatalf("a bad kind name: %v, want ErrInvalid at once", err)
	}
}
