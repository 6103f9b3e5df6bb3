// Package retry is the one rule that decides what a failed attempt leads
// to. The executor (a handler's error) and the rescuer (a lost worker) both
// use it, so a job retries the same way however its attempt failed.
package retry

import (
	"time"

	"github.com/spoolq/spool/shared/spooltype"
)

// Decide returns the status a job gets after its attempt-th attempt
// failed, and how long it waits before the next: dead once its attempts
// are spent or the failure is permanent, else retrying after its backoff.
func Decide(attempt, maxAttempts int, b spooltype.Backoff, permanent bool) (spooltype.Status, time.Duration) {
	if permanent || attempt >= maxAttempts {
		return spooltype.StatusDead, 0
	}
	return spooltype.StatusRetrying, b.Delay(attempt)
}

// BackoffOf is a job's backoff: its own fields, else def's.
func BackoffOf(base, maxDelay time.Duration, def spooltype.Backoff) spooltype.Backoff {
	return spooltype.Backoff{Base: base, Max: maxDelay}.Or(def)
}

// NotBefore is the wait before a retry the failure asked to delay by at
// least floor (an HTTP Retry-After): the larger of the backoff's delay and
// floor, but never more than the backoff's max.
func NotBefore(delay, floor time.Duration, b spooltype.Backoff) time.Duration {
	return min(max(delay, floor), b.Max)
}
