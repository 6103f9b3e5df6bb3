package lease

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// An attempt is cancelled by its local expiry (sent + lease − lease/10),
// not at the first check after it: the check one step before the expiry
// cancels it, since the next one would come too late, and one two steps
// before does not.
func TestExpireCancelsByTheLocalExpiryNotAStepAfter(t *testing.T) {
	const lease = 3 * time.Second
	step := lease / 10
	sent := time.Now()
	expiry := sent.Add(lease - Margin(lease))
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{expiry.Add(-2 * step), false},
		{expiry.Add(-step - time.Millisecond), false},
		{expiry.Add(-step / 2), true}, // the next check, at expiry + step/2, would be late
		{expiry, true},
	} {
		k := &Keeper{Lease: lease, Log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancelCause(context.Background())
		k.Add(Attempt{ID: 1, Token: 1}, sent, cancel)
		k.expire(c.at, step)
		if got := ctx.Err() != nil; got != c.want {
			t.Errorf("check at expiry%+v: cancelled = %v, want %v", c.at.Sub(expiry), got, c.want)
		}
		if got := k.Count() == 0; got != c.want {
			t.Errorf("check at expiry%+v: released = %v, want %v", c.at.Sub(expiry), got, c.want)
		}
	}
}
