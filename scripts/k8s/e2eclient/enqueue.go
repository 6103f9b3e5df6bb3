package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"
)

// enqueueSummary is what one wave wrote (-summary-out).
type enqueueSummary struct {
	Wave          string    `json:"wave"`
	Requested     int       `json:"requested"`
	Accepted      int       `json:"accepted"`
	Duplicates    int       `json:"duplicates"` // answered "duplicate": a retried batch that had committed
	Noop          int       `json:"noop"`
	Sleep         int       `json:"sleep"`
	SleepMillis   int64     `json:"sleep_ms_total"`
	Requests      int       `json:"requests"`
	FailedTries   int       `json:"failed_tries"` // requests retried after an error
	FirstAt       time.Time `json:"first_at"`
	LastAt        time.Time `json:"last_at"`
	MinID         int64     `json:"min_id"`
	MaxID         int64     `json:"max_id"`
	ElapsedSecond float64   `json:"elapsed_seconds"`
}

type jobSpec struct {
	Type           string         `json:"type"`
	Payload        map[string]any `json:"payload"`
	IdempotencyKey string         `json:"idempotency_key"`
}

// cmdEnqueue writes -n jobs through POST /v1/jobs/batch: noop and sleep
// (uniform in [min-ms, max-ms]) mixed by a seeded random source, each with an
// idempotency key, so a batch retried after an unknown outcome (connection
// reset during an API rollout) never creates a job twice.
func cmdEnqueue(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	n := fs.Int("n", 5000, "jobs to enqueue")
	batch := fs.Int("batch", 1000, "jobs per POST /v1/jobs/batch (the API allows up to 1000)")
	sleepShare := fs.Float64("sleep-share", 0.5, "share of sleep jobs (the rest are noop)")
	minMS := fs.Int("min-ms", 50, "shortest sleep job, ms")
	maxMS := fs.Int("max-ms", 500, "longest sleep job, ms")
	seed := fs.Uint64("seed", 1, "random seed of the job mix")
	keyPrefix := fs.String("key-prefix", "", "idempotency key prefix (required: unique per run and wave)")
	wave := fs.String("wave", "load", "name of this wave in the summary")
	interval := fs.Duration("interval", 0, "pause between batches (spreads the wave over time)")
	retries := fs.Int("retries", 8, "attempts per batch request")
	idsOut := fs.String("ids-out", "", "append the job ids here, one per line, after each acknowledged batch (so the file holds what the API acknowledged so far)")
	summaryOut := fs.String("summary-out", "", "write the summary as JSON here")
	fs.Parse(args)
	c, err := a.client()
	if err != nil {
		return err
	}
	if *keyPrefix == "" {
		return errors.New("-key-prefix is required")
	}
	if *batch < 1 || *batch > 1000 || *minMS < 1 || *maxMS < *minMS {
		return errors.New("bad -batch, -min-ms or -max-ms")
	}
	rng := rand.New(rand.NewPCG(*seed, 0x5ba01))
	specs := make([]jobSpec, *n)
	sum := enqueueSummary{Wave: *wave, Requested: *n}
	for i := range specs {
		key := fmt.Sprintf("%s-%d", *keyPrefix, i)
		if rng.Float64() < *sleepShare {
			ms := *minMS + rng.IntN(*maxMS-*minMS+1)
			specs[i] = jobSpec{Type: "sleep", Payload: map[string]any{"ms": ms}, IdempotencyKey: key}
			sum.Sleep++
			sum.SleepMillis += int64(ms)
		} else {
			specs[i] = jobSpec{Type: "noop", Payload: map[string]any{"seq": i}, IdempotencyKey: key}
			sum.Noop++
		}
	}
	var ids []int64
	var idsFile *os.File
	if *idsOut != "" {
		f, err := os.OpenFile(*idsOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		idsFile = f
	}
	start := time.Now()
	for off := 0; off < len(specs); off += *batch {
		if off > 0 && *interval > 0 {
			time.Sleep(*interval)
		}
		end := min(off+*batch, len(specs))
		var resp struct {
			Jobs []struct {
				ID        int64 `json:"id"`
				Duplicate bool  `json:"duplicate"`
			} `json:"jobs"`
		}
		var lastErr error
		for try := 1; try <= *retries; try++ {
			sum.Requests++
			lastErr = c.do(http.MethodPost, "/v1/jobs/batch", map[string]any{"jobs": specs[off:end]}, &resp)
			if lastErr == nil {
				break
			}
			var he *httpError
			if errors.As(lastErr, &he) && he.status/100 == 4 && he.status != http.StatusTooManyRequests {
				return fmt.Errorf("batch %d-%d refused: %w", off, end-1, lastErr) // retrying cannot help
			}
			sum.FailedTries++
			fmt.Fprintf(os.Stderr, "  enqueue %s: batch %d-%d try %d: %v\n", *wave, off, end-1, try, lastErr)
			time.Sleep(time.Duration(try) * 500 * time.Millisecond)
		}
		if lastErr != nil {
			return fmt.Errorf("batch %d-%d: %w", off, end-1, lastErr)
		}
		if len(resp.Jobs) != end-off {
			return fmt.Errorf("batch %d-%d: %d ids in the answer", off, end-1, len(resp.Jobs))
		}
		now := time.Now()
		if sum.FirstAt.IsZero() {
			sum.FirstAt = now
		}
		sum.LastAt = now
		var sb strings.Builder
		for _, j := range resp.Jobs {
			ids = append(ids, j.ID)
			fmt.Fprintf(&sb, "%d\n", j.ID)
			if j.Duplicate {
				sum.Duplicates++
			}
		}
		if idsFile != nil {
			if _, err := idsFile.WriteString(sb.String()); err != nil {
				return err
			}
		}
	}
	sum.Accepted = len(ids)
	sum.ElapsedSecond = time.Since(start).Seconds()
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("job id %d answered twice", id)
		}
		seen[id] = true
		if sum.MinID == 0 || id < sum.MinID {
			sum.MinID = id
		}
		sum.MaxID = max(sum.MaxID, id)
	}
	fmt.Printf("  enqueued %d jobs (%d noop, %d sleep totalling %.0fs of sleep) in %d requests (%d retried) in %.1fs; ids %d..%d\n",
		sum.Accepted, sum.Noop, sum.Sleep, float64(sum.SleepMillis)/1000, sum.Requests, sum.FailedTries, sum.ElapsedSecond, sum.MinID, sum.MaxID)
	if idsFile != nil {
		if err := idsFile.Close(); err != nil {
			return err
		}
	}
	if *summaryOut != "" {
		return writeJSON(*summaryOut, sum)
	}
	return nil
}
