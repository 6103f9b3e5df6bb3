package jobqueue

import (
	"context"
	"errors"
	"testing"
	"time"
)

// RetryAfter sets a floor under the backoff's delay, capped by the job's
// backoff max; it does not keep a last attempt or a permanent failure
// from being dead.
func TestRetryAfterFloorsTheBackoffDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		err         error
		attempt     int
		wantOutcome string
		lo, hi      time.Duration
	}{
		{"longer than the backoff", RetryAfter(10*time.Second, errors.New("429")), 1, "retried", 10 * time.Second, 10 * time.Second},
		{"shorter than the backoff", RetryAfter(time.Millisecond, errors.New("429")), 1, "retried", 500 * time.Millisecond, time.Second},
		{"capped by the backoff max", RetryAfter(3*time.Hour, errors.New("429")), 1, "retried", time.Minute, time.Minute},
		{"last attempt", RetryAfter(10*time.Second, errors.New("429")), 3, "dead", 0, 0},
		{"permanent", Permanent(RetryAfter(10*time.Second, errors.New("no"))), 1, "dead", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kinds := NewKinds()
			kinds.Handle("ra", func(context.Context, *Job) error { return tc.err }, nil)
			res, err := RunAttempt(context.Background(), kinds, &Job{ID: 1, Kind: "ra", Attempts: tc.attempt, MaxAttempts: 3,
				BackoffBase: time.Second, BackoffMax: time.Minute}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.wantOutcome || res.Delay < tc.lo || res.Delay > tc.hi {
				t.Fatalf("got %s after %s, want %s after %s…%s", res.Outcome, res.Delay, tc.wantOutcome, tc.lo, tc.hi)
			}
			if res.Message != tc.err.Error() {
				t.Fatalf("message %q, want %q", res.Message, tc.err.Error())
			}
		})
	}
}
