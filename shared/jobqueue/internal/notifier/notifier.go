// Package notifier wakes a worker's producers when jobs are inserted: it
// LISTENs on the schema's channel on a connection of its own (LISTEN needs
// a session, so behind a transaction pooler it takes a direct URL), and
// reconnects with backoff. Lost notifications cost at most a poll
// interval: producers also poll.
//
// After each LISTEN it checks that notifications arrive: it sends one from
// a second connection of the same configuration and waits for it. Behind
// a pooler in transaction mode (PgBouncer's pool_mode=transaction) the
// LISTEN lands on a server connection the listener does not keep, nothing
// arrives, and the notifier says so: the worker polls only, and the check
// is repeated every recheckInterval (a server too slow to deliver it in
// time does not cost notifications for good).
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifier listens on Channel and calls Wake with each notification's
// queue, and WakeAll after every (re)connect, for what was inserted while
// it was not listening.
type Notifier struct {
	Config  *pgx.ConnConfig
	Channel string
	Wake    func(queue string)
	WakeAll func()
	Log     *slog.Logger
	// PollInterval is how often the producers poll; it is only logged.
	PollInterval time.Duration

	deaf bool // the last check got no notification
}

// checkTimeout is how long the listener waits for its own check
// notification before it concludes that LISTEN cannot work here.
const checkTimeout = 5 * time.Second

// recheckInterval is how long a notifier whose check failed waits before
// it listens and checks again.
const recheckInterval = 5 * time.Minute

// checkPrefix starts a check notification's payload; producers ignore it
// (":" is never in a queue name).
const checkPrefix = "spool:listen-check:"

// errDeaf: LISTEN succeeded, but a notification sent after it never came.
var errDeaf = errors.New("no notification arrived after LISTEN")

// Run listens until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case errors.Is(err, errDeaf):
			if !n.deaf {
				n.Log.Warn("LISTEN gets no notifications on this connection (a pooler in transaction mode?): "+
					"new jobs are found by polling only; give the worker a direct connection for LISTEN (SPOOL_LISTEN_DATABASE_URL) to pick them up at once",
					"waited", checkTimeout, "poll_interval", n.PollInterval, "checked_again_in", recheckInterval)
			}
			n.deaf, wait = true, recheckInterval
		default:
			if time.Since(began) > time.Minute { // it was healthy: this is a new outage
				pause = 100 * time.Millisecond
			}
			wait = pause
			n.Log.Warn("notification listener lost its connection; retrying", "error", err, "in", pause)
			pause = min(pause*2, 5*time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (n *Notifier) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, n.Config.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{n.Channel}.Sanitize()); err != nil {
		return err
	}
	if err := n.check(ctx, conn); err != nil {
		if errors.Is(err, errDeaf) {
			// Through a transaction pooler this most likely reaches the
			// server connection that ran LISTEN (pools reuse the last one).
			_, _ = conn.Exec(ctx, `UNLISTEN *`)
		}
		return err
	}
	if n.deaf {
		n.deaf = false
		n.Log.Info("LISTEN gets notifications now: new jobs wake this worker at once")
	}
	n.WakeAll()
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.Wake(note.Payload)
	}
}

// check sends a notification on a second connection and waits for it on
// conn, passing on the real ones that come first.
func (n *Notifier) check(ctx context.Context, conn *pgx.Conn) error {
	token := fmt.Sprint(checkPrefix, rand.Uint64())
	other, err := pgx.ConnectConfig(ctx, n.Config.Copy())
	if err != nil {
		return err
	}
	_, err = other.Exec(ctx, `SELECT pg_notify($1, $2)`, n.Channel, token)
	other.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("check notification: %w", err)
	}
	wait, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for {
		note, err := conn.WaitForNotification(wait)
		switch {
		case err != nil && ctx.Err() == nil && wait.Err() != nil:
			return errDeaf
		case err != nil:
			return err
		case note.Payload == token:
			return nil
		case !strings.HasPrefix(note.Payload, checkPrefix):
			n.Wake(note.Payload) // another worker's check is not for us
		}
	}
}
