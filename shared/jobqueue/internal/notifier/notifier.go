// Package notifier wakes a worker's producers when jobs are inserted: it
// LISTENs on the schema's channel on a connection of its own (LISTEN needs
// a session, so behind a transaction pooler it takes a direct URL), and
// reconnects with backoff. Lost notifications cost at most a poll
// interval: producers also poll.
package notifier

import (
	"context"
	"log/slog"
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
}

// Run listens until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute { // it was healthy: this is a new outage
			pause = 100 * time.Millisecond
		}
		n.Log.Warn("notification listener lost its connection; retrying", "error", err, "in", pause)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
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
	n.WakeAll()
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.Wake(note.Payload)
	}
}
