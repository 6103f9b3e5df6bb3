package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

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
		{`SELECT 1 FROM products WHERE sku = $1`, "mug\x00", "22021"},
		{`SELECT $1::jsonb`, `{"a":"\u0000"}`, "22P05"},
	} {
		var out any
		err := db.Pool.QueryRow(t.Context(), q.sql, q.arg).Scan(&out)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != q.code {
			t.Fatalf("%s with %q: %v, want SQLSTATE %s", q.sql, q.arg, err, q.code)
		}
		for _, wrapped := range []error{err, fmt.Errorf("create workflow: %w", err), orderError(err), scheduleError(err)} {
			rec := httptest.NewRecorder()
			writeError(rec, httptest.NewRequest("POST", "/v1/orders", nil), wrapped)
			var body errorBody
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
