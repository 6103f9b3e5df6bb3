package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

func TestValidText(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "plain": true, "ünïcödé ✓ 🎉": true, "\uFFFD": true, "'; DROP TABLE x; --": true, "\x01\x7f": true,
		"\x00": false, "a\x00": false, "\x00b": false, "\xff": false, "a\xc3\x28": false,
		"\xed\xa0\x80": false, "\xc0\xaf": false, "\xf4\x90\x80\x80": false, "ok\xe2\x82": false,
	} {
		if got := jobqueue.ValidText(s); got != want {
			t.Errorf("ValidText(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestUnstorableTextBackstop: if text PostgreSQL cannot store ever gets
// past validation, the server's refusal (SQLSTATE 22021, or 22P05 in
// jsonb) is still the client's 400 with the usual body, not a 500, however
// the store wrapped it. Other SQL errors stay 500.
func TestUnstorableTextBackstop(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	for _, q := range []struct {
		sql  string
		arg  string
		code string
	}{
		{`SELECT $1::text`, "a\x00b", "22021"},
		{`SELECT $1::text`, "a\xffb", "22021"},
		{`SELECT 1 FROM spool.spool_queues WHERE name = $1`, "mug\x00", "22021"},
		{`SELECT $1::jsonb`, `{"a":"\u0000"}`, "22P05"},
	} {
		var out any
		err := db.Pool.QueryRow(t.Context(), q.sql, q.arg).Scan(&out)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != q.code {
			t.Fatalf("%s with %q: %v, want SQLSTATE %s", q.sql, q.arg, err, q.code)
		}
		for _, wrapped := range []error{err, fmt.Errorf("create workflow: %w", err), fmt.Errorf("place order: %w", err), scheduleError(err)} {
			rec := httptest.NewRecorder()
			writeError(rec, httptest.NewRequest("POST", "/v1/orders", nil), wrapped)
			var body problem
			if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error == "" {
				t.Errorf("%q via %v: %d %s, want 400 with an error body", q.arg, wrapped, rec.Code, rec.Body)
			}
		}
	}
	err := db.Pool.QueryRow(t.Context(), `SELECT 1/0`).Scan(new(int))
	if ae := toAPIError(err); ae.Status != http.StatusInternalServerError {
		t.Fatalf("division by zero answers %d, want 500", ae.Status)
	}
}

// A transaction PostgreSQL aborts to break a deadlock wrote nothing; the
// client is told to retry (503 with Retry-After), not that Spool broke.
func TestDeadlockAnswersRetry(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := t.Context()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE locks (id int PRIMARY KEY); INSERT INTO locks VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	// Two transactions take the two rows in opposite orders.
	errs := make(chan error, 2)
	locked := make(chan struct{}, 2)
	for _, order := range [][2]int{{1, 2}, {2, 1}} {
		go func() {
			tx, err := db.Pool.Begin(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `SELECT 1 FROM locks WHERE id = $1 FOR UPDATE`, order[0]); err != nil {
				errs <- err
				return
			}
			locked <- struct{}{}
			for len(locked) < 2 && ctx.Err() == nil { // both hold their first row
				time.Sleep(5 * time.Millisecond)
			}
			_, err = tx.Exec(ctx, `SELECT 1 FROM locks WHERE id = $1 FOR UPDATE`, order[1])
			errs <- err
		}()
	}
	var deadlock error
	for range 2 {
		if err := <-errs; err != nil {
			deadlock = err
		}
	}
	var pgErr *pgconn.PgError
	if !errors.As(deadlock, &pgErr) || pgErr.Code != "40P01" {
		t.Fatalf("got %v, want one transaction aborted with SQLSTATE 40P01", deadlock)
	}
	rec := httptest.NewRecorder()
	writeError(rec, httptest.NewRequest("POST", "/v1/orders", nil), fmt.Errorf("place order: %w", deadlock))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("deadlock answers %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}
