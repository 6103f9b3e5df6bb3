package jobqueue

import (
	"math/rand/v2"
	"time"
)

// Backoff is an exponential retry delay with "equal jitter": the n-th retry
// waits a random time in [d/2, d] where d = min(Max, Base·2^(n-1)). Jitter
// keeps a burst of failures from retrying in lockstep; the floor keeps a
// retry from following its failure at once.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// DefaultBackoff: 1s, 2s, 4s … capped at one hour.
var DefaultBackoff = Backoff{Base: time.Second, Max: time.Hour}

// Ceiling is the upper bound d of the delay before retry n (n ≥ 1).
func (b Backoff) Ceiling(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Delay draws the delay before retry n.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Ceiling(n)
	half := d / 2
	return half + rand.N(d-half+1)
}
