package jobqueue

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors callers match with errors.Is.
var (
	ErrNotFound     = errors.New("job not found")
	ErrInvalidState = errors.New("job is not in a state that allows this")
	ErrUnavailable  = errors.New("database unavailable")
)

// interpretError turns driver errors into the package's own, in one place.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Classes 08 (connection), 53 (resources) and 57 (shutdown, crash
		// recovery) mean the server is going or gone, not that we erred.
		switch pgErr.Code[:2] {
		case "08", "53", "57":
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err // the server answered: a real SQL error, not an outage
	}
	if IsConnError(err) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// IsConnError reports whether err means the database could not be reached
// (as opposed to an error the server answered with).
func IsConnError(err error) bool {
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED)
}

// permanentError marks a failure that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the job goes straight to dead instead of retrying
// (a declined card will not be accepted on the fifth try).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// snoozeError asks for a later run without spending an attempt.
type snoozeError struct{ after time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.after) }

// Snooze returns an error that makes the job run again after d without
// counting the attempt (waiting for a resource is not a failure).
func Snooze(d time.Duration) error { return &snoozeError{after: d} }
