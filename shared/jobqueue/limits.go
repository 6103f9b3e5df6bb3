package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Bounds of limits.
const (
	MinRatePerSecond = 0.001 // one start every ~17 minutes; slower is a pause
	MaxLimits        = 1000  // limits that may exist at once
)

// CheckLimit refuses a limit that bounds nothing or is out of range.
func CheckLimit(l Limit) error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch l.Scope {
	case ScopeQueue:
		if err := CheckQueueName(l.Name); err != nil {
			return bad("name", "not a valid queue name")
		}
	case ScopeKind:
		if err := CheckKindName(l.Name); err != nil {
			return bad("name", "not a valid kind name")
		}
	case ScopeHost:
		if err := CheckHostName(l.Name); err != nil {
			return bad("name", "%s", err.Error())
		}
		if l.MaxRunning != nil {
			return bad("max_running", "a host limit is a rate only: set rate_per_second (and burst), not max_running")
		}
		if l.RatePerSecond == nil {
			return bad("rate_per_second", "a host limit needs rate_per_second")
		}
	default:
		return bad("scope", "must be %s, %s or %s", ScopeQueue, ScopeKind, ScopeHost)
	}
	switch {
	case l.MaxRunning == nil && l.RatePerSecond == nil:
		return bad("max_running", "set max_running, rate_per_second or both")
	case l.MaxRunning != nil && (*l.MaxRunning < 1 || *l.MaxRunning > 100_000):
		return bad("max_running", "must be 1-100000")
	case l.RatePerSecond != nil && (math.IsNaN(*l.RatePerSecond) || *l.RatePerSecond < MinRatePerSecond || *l.RatePerSecond > 1e6):
		// Below a token per 1000 s the wait for the next token overflows a
		// Duration soon enough to matter; pause the queue instead.
		return bad("rate_per_second", "must be between %g (one start every ~17 minutes; pause the queue to stop it) and 1000000", MinRatePerSecond)
	case l.Burst < 1 || l.Burst > 100_000:
		return bad("burst", "must be 1-100000")
	}
	return nil
}

// MaxHostName bounds a host limit's name (the limits table's name column).
const MaxHostName = 128

// CheckHostName checks the name of a host limit: a destination host as the
// http kind compares it, a lower-case DNS name without a trailing dot
// (labels of a-z, 0-9, '-' and '_', at most 63 bytes each) or an IP
// address in its canonical form (127.0.0.1, ::1), at most MaxHostName
// bytes.
func CheckHostName(name string) error {
	if name == "" || len(name) > MaxHostName {
		return fmt.Errorf("a host name of 1-%d bytes", MaxHostName)
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		if ip.Zone() != "" || ip.Unmap().String() != name {
			return fmt.Errorf("an IP address in its canonical form (%s)", ip.Unmap().WithZone(""))
		}
		return nil
	}
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; last != "" && strings.Trim(last, "0123456789") == "" {
		// A numeric last label is an IP address in another form (127.000.0.1, 2130706433).
		return errors.New("an IP address in its canonical form (127.0.0.1)")
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return errors.New("a lower-case host name (labels of 1-63 characters, no trailing dot) or an IP address")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return errors.New("a lower-case host name (a-z, 0-9, '-', '_' and dots) or an IP address")
			}
		}
	}
	return nil
}

// TakeToken takes one token from the bucket of the rate limit scope/name
// (for ScopeHost, the http kind does it just before sending), atomically
// across every process. It returns 0 when a token was taken or there is no
// such rate limit, else how long until a token should be there (nothing is
// taken): a handler snoozes that long (Snooze) instead of sending.
func (c *Client) TakeToken(ctx context.Context, scope, name string) (time.Duration, error) {
	limited, taken, wait, err := c.store.TakeToken(ctx, c.pool, scope, name)
	if err != nil || !limited || taken {
		return 0, err
	}
	return max(wait, time.Millisecond), nil
}

// SetLimit creates or replaces a limit (a zero Burst is 1). The token
// bucket starts full. At most MaxLimits may exist.
func (c *Client) SetLimit(ctx context.Context, l Limit) (Limit, error) {
	if l.Burst == 0 {
		l.Burst = 1
	}
	if err := CheckLimit(l); err != nil {
		return Limit{}, err
	}
	n, err := c.store.CountLimits(ctx, c.pool)
	if err != nil {
		return Limit{}, err
	}
	if n >= MaxLimits {
		if existing, err := c.Limits(ctx); err == nil && !hasLimit(existing, l) {
			return Limit{}, &InvalidError{Field: "name", Reason: fmt.Sprintf("at most %d limits may exist; delete one first", MaxLimits)}
		}
	}
	return l, c.store.SetLimit(ctx, c.pool, l)
}

func hasLimit(ls []Limit, l Limit) bool {
	for _, x := range ls {
		if x.Scope == l.Scope && x.Name == l.Name {
			return true
		}
	}
	return false
}

// DeleteLimit removes a limit; ErrNotFound if there was none.
func (c *Client) DeleteLimit(ctx context.Context, scope, name string) error {
	return c.store.DeleteLimit(ctx, c.pool, scope, name)
}

// Limits lists every limit.
func (c *Client) Limits(ctx context.Context) ([]Limit, error) {
	return c.store.Limits(ctx, c.pool)
}

func sortedQueues(byName map[string]*QueueInfo) []QueueInfo {
	out := make([]QueueInfo, 0, len(byName))
	for _, q := range byName {
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
