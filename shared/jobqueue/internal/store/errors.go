package store

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolq/spool/shared/spooltype"
)

// Interpret turns driver errors into the package's own, in one place:
// no row is ErrNotFound, an unreachable or failing-over server is
// ErrUnavailable, and everything the server answered stays as it is.
func Interpret(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return spooltype.ErrNotFound
	}
	if errors.Is(err, spooltype.ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Classes 08 (connection), 53 (resources) and 57 (shutdown, crash
		// recovery), and 25006 (a read-only standby after a failover),
		// mean the server is going or gone, not that we erred.
		switch {
		case pgErr.Code[:2] == "08", pgErr.Code[:2] == "53", pgErr.Code[:2] == "57", pgErr.Code == "25006":
			return fmt.Errorf("%w: %v", spooltype.ErrUnavailable, err)
		}
		return err
	}
	if IsConnError(err) {
		return fmt.Errorf("%w: %v", spooltype.ErrUnavailable, err)
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
