package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/jobqueue"
)

// dbState is the row count and a content checksum of every table the API
// writes.
func (f *fixture) dbState() string {
	f.t.Helper()
	var out []string
	for _, table := range []string{"spool_jobs", "spool_schedules", "spool_limits", "spool_queues"} {
		var n int64
		var sum string
		err := f.db.Pool.QueryRow(context.Background(),
			`SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM `+table+` t`).Scan(&n, &sum)
		if err != nil {
			f.t.Fatalf("state of %s: %v", table, err)
		}
		out = append(out, fmt.Sprintf("%s: %d rows, md5 %s", table, n, sum))
	}
	return strings.Join(out, "; ")
}

// seedAll gives every table rows for a hostile request to damage, and dead
// jobs for a filter to (wrongly) match.
func (f *fixture) seedAll() {
	f.t.Helper()
	for _, p := range []jobqueue.EnqueueParams{{}, {Queue: "emails"}, {Type: "fail", Payload: map[string]string{"message": "x"}}} {
		f.exec(makeDead, f.enqueue(p))
	}
	f.exec(makeCompleted, f.enqueue(jobqueue.EnqueueParams{}))
	f.enqueue(jobqueue.EnqueueParams{IdempotencyKey: "seed"})
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/v1/schedules/kept", `{"spec":"@hourly","type":"noop"}`},
		{"PUT", "/v1/limits/queue/emails", `{"max_running":3}`},
		{"POST", "/v1/queues/paused/pause", ""},
	} {
		if rec := f.do(r.method, r.path, r.body); rec.Code != 200 {
			f.t.Fatalf("seed %s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
}

type hostileCase struct {
	name         string
	method, path string
	body         string
	contentType  string // default application/json when there is a body; "-" for none
	status       int
}

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"f%d":1`, i)
	}
	return b.String()
}

func utf16Body(s string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(u))
		b.WriteByte(byte(u >> 8))
	}
	return b.String()
}

func hostileCases() []hostileCase {
	const sqlDrop = `'; DROP TABLE spool_jobs; --`
	esc := url.PathEscape
	qesc := url.QueryEscape
	job := func(fields string) string { return `{"type":"noop"` + fields + `}` }
	return []hostileCase{
		// Malformed JSON.
		{"trailing comma", "POST", "/v1/jobs", `{"type":"noop",}`, "", 400},
		{"single quotes", "POST", "/v1/jobs", `{'type':'noop'}`, "", 400},
		{"comment", "POST", "/v1/jobs", `{"type":"noop"/* hi */}`, "", 400},
		{"NaN", "POST", "/v1/jobs", `{"type":"noop","priority":NaN}`, "", 400},
		{"Infinity", "POST", "/v1/jobs", `{"type":"noop","priority":Infinity}`, "", 400},
		{"byte order mark", "POST", "/v1/jobs", "\xef\xbb\xbf" + `{"type":"noop"}`, "", 400},
		{"truncated", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"}`, "", 400},
		{"string body", "POST", "/v1/jobs", `"noop"`, "", 400},
		{"null body", "POST", "/v1/jobs", `null`, "", 422},
		{"raw NUL after the value", "POST", "/v1/jobs", `{"type":"noop"}` + "\x00", "", 400},
		{"raw NUL in a string", "POST", "/v1/jobs", "{\"type\":\"no\x00op\"}", "", 400},
		{"raw newline in a string", "POST", "/v1/jobs", "{\"type\":\"no\nop\"}", "", 400},
		{"lone surrogate escape", "POST", "/v1/jobs", `{"type":"noop\ud800"}`, "", 422}, // decoded as U+FFFD: no such type

		// Deep nesting: the decoder's depth limit answers, not the stack.
		{"100k nested arrays in payload", "POST", "/v1/jobs", `{"type":"noop","payload":` + nested("[", "]", 100_000) + `}`, "", 400},
		{"100k nested arrays as body", "POST", "/v1/jobs", nested("[", "]", 100_000), "", 400},
		{"20k nested objects", "POST", "/v1/jobs", `{"type":"noop","payload":` + strings.Repeat(`{"a":`, 20_000) + "1" + strings.Repeat("}", 20_000) + `}`, "", 400},
		{"nested batch element", "POST", "/v1/jobs/batch", `{"jobs":[` + nested("[", "]", 100_000) + `]}`, "", 400},
		{"nested schedule payload", "PUT", "/v1/schedules/deep", `{"spec":"@hourly","type":"noop","payload":` + nested("[", "]", 100_000) + `}`, "", 400},
		{"nested limit body", "PUT", "/v1/limits/queue/emails", nested("[", "]", 30_000), "", 400},
		{"nested dead filter", "POST", "/v1/dead/retry", nested("[", "]", 30_000), "", 400},

		// Huge strings.
		{"1 MB type", "POST", "/v1/jobs", `{"type":"` + strings.Repeat("t", 1_000_000) + `"}`, "", 422},
		{"1 MB queue", "POST", "/v1/jobs", job(`,"queue":"` + strings.Repeat("q", 1_000_000) + `"`), "", 422},
		{"1 MB idempotency key", "POST", "/v1/jobs", job(`,"idempotency_key":"` + strings.Repeat("k", 1_000_000) + `"`), "", 422},
		{"1 MB run_at", "POST", "/v1/jobs", job(`,"run_at":"` + strings.Repeat("9", 1_000_000) + `"`), "", 422},
		{"1 MB number", "POST", "/v1/jobs", job(`,"priority":` + strings.Repeat("9", 1_000_000)), "", 400},
		{"2 MB payload", "POST", "/v1/jobs", `{"type":"fail","payload":{"message":"` + strings.Repeat("x", 2<<20) + `"}}`, "", 413},
		{"10 MB body", "POST", "/v1/jobs", strings.Repeat(" ", 10<<20), "", 413},
		{"9 MB batch", "POST", "/v1/jobs/batch", `{"jobs":[` + strings.Repeat(`{"type":"noop"},`, 9<<20/15) + `{"type":"noop"}]}`, "", 413},
		{"1 MB schedule payload", "PUT", "/v1/schedules/big", `{"spec":"@hourly","type":"fail","payload":{"message":"` + strings.Repeat("x", 1<<20) + `"}}`, "", 413},
		{"1 MB spec", "PUT", "/v1/schedules/big", `{"spec":"` + strings.Repeat("*", 1_000_000) + `","type":"noop"}`, "", 422},
		{"100 KB limit body", "PUT", "/v1/limits/queue/emails", `{"max_running":1,"x":"` + strings.Repeat("x", 100<<10) + `"}`, "", 413},
		{"long type filter", "GET", "/v1/jobs?type=" + strings.Repeat("t", 129), "", "", 400},
		{"long dead type filter", "DELETE", "/v1/dead?type=" + strings.Repeat("t", 129), "", "", 422},

		// Invalid UTF-8: refused, not silently replaced.
		{"invalid UTF-8 type", "POST", "/v1/jobs", "{\"type\":\"noop\xff\"}", "", 400},
		{"invalid UTF-8 key", "POST", "/v1/jobs", job(",\"idempotency_key\":\"\xc3\x28\""), "", 400},
		{"UTF-8 encoded surrogate in payload", "POST", "/v1/jobs", "{\"type\":\"fail\",\"payload\":{\"message\":\"\xed\xa0\x80\"}}", "", 400},
		{"overlong UTF-8 in queue", "POST", "/v1/jobs", job(",\"queue\":\"\xc0\xaf\""), "", 400},
		{"invalid UTF-8 schedule", "PUT", "/v1/schedules/x", "{\"spec\":\"@hourly\xfe\",\"type\":\"noop\"}", "", 400},
		{"invalid UTF-8 limit", "PUT", "/v1/limits/queue/emails", "{\"max_running\":1,\"burst\":1}\xff", "", 400},
		{"invalid UTF-8 dead filter body", "POST", "/v1/dead/retry", "{\"type\":\"\xff\"}", "", 400},
		{"invalid UTF-8 type filter", "GET", "/v1/jobs?type=%FF%FE", "", "", 400},
		{"invalid UTF-8 dead type filter", "DELETE", "/v1/dead?type=%C3%28", "", "", 422},
		{"invalid UTF-8 schedule name", "GET", "/v1/schedules/%FF", "", "", 404},
		{"invalid UTF-8 schedule delete", "DELETE", "/v1/schedules/%FF", "", "", 404},
		{"invalid UTF-8 queue name", "POST", "/v1/queues/%FF/pause", "", "", 422},

		// U+0000, which PostgreSQL's text and jsonb cannot hold.
		{"NUL type", "POST", "/v1/jobs", `{"type":"noop\u0000"}`, "", 422},
		{"NUL queue", "POST", "/v1/jobs", job(`,"queue":"a\u0000"`), "", 422},
		{"NUL key", "POST", "/v1/jobs", job(`,"idempotency_key":"a\u0000"`), "", 422},
		{"NUL payload", "POST", "/v1/jobs", `{"type":"fail","payload":{"message":"\u0000"}}`, "", 422},
		{"NUL run_at", "POST", "/v1/jobs", job(`,"run_at":"2030-01-01T00:00:00Z\u0000"`), "", 422},
		{"NUL in batch", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"},{"type":"fail","payload":{"message":"\u0000"}}]}`, "", 422},
		{"NUL schedule payload", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"fail","payload":{"message":"\u0000"}}`, "", 422},
		{"NUL schedule spec", "PUT", "/v1/schedules/x", `{"spec":"@hourly\u0000","type":"noop"}`, "", 422},
		{"NUL schedule zone", "PUT", "/v1/schedules/x", `{"spec":"@hourly","timezone":"UTC\u0000","type":"noop"}`, "", 422},
		{"NUL schedule queue", "PUT", "/v1/schedules/x", `{"spec":"@hourly","queue":"\u0000","type":"noop"}`, "", 422},
		{"NUL dead retry type", "POST", "/v1/dead/retry", `{"type":"\u0000"}`, "", 422},
		{"NUL dead retry queue", "POST", "/v1/dead/retry", `{"queue":"\u0000"}`, "", 422},
		{"NUL dead delete type", "DELETE", "/v1/dead?type=%00", "", "", 422},
		{"NUL list type", "GET", "/v1/jobs?type=%00", "", "", 400},
		{"NUL list queue", "GET", "/v1/jobs?queue=%00", "", "", 400},
		{"NUL list status", "GET", "/v1/jobs?status=%00", "", "", 400},
		{"NUL schedule get", "GET", "/v1/schedules/%00", "", "", 404},
		{"NUL schedule delete", "DELETE", "/v1/schedules/%00", "", "", 404},
		{"NUL schedule put", "PUT", "/v1/schedules/%00", `{"spec":"@hourly","type":"noop"}`, "", 422},
		{"NUL queue pause", "POST", "/v1/queues/%00/pause", "", "", 422},
		{"NUL limit queue", "PUT", "/v1/limits/queue/%00", `{"max_running":1}`, "", 422},
		{"NUL limit type", "DELETE", "/v1/limits/type/%00", "", "", 422},

		// SQL metacharacters where they are not valid values.
		{"SQL type", "POST", "/v1/jobs", `{"type":"noop` + sqlDrop + `"}`, "", 422},
		{"SQL queue", "POST", "/v1/jobs", job(`,"queue":"default` + sqlDrop + `"`), "", 422},
		{"SQL priority", "POST", "/v1/jobs", job(`,"priority":"1; DROP TABLE spool_jobs"`), "", 400},
		{"SQL run_at", "POST", "/v1/jobs", job(`,"run_at":"now()"`), "", 422},
		{"SQL delay", "POST", "/v1/jobs", job(`,"delay":"1s` + sqlDrop + `"`), "", 422},
		{"SQL timeout", "POST", "/v1/jobs", job(`,"timeout":"interval '1 day'"`), "", 422},
		{"SQL payload type", "POST", "/v1/jobs", `{"type":"sleep","payload":{"ms":"1); DROP TABLE spool_jobs; --"}}`, "", 422},
		{"SQL job id", "GET", "/v1/jobs/" + esc("1 OR 1=1"), "", "", 404},
		{"SQL cancel id", "POST", "/v1/jobs/" + esc("1;DELETE FROM spool_jobs") + "/cancel", "", "", 404},
		{"SQL status filter", "GET", "/v1/jobs?status=" + qesc("pending' OR '1'='1"), "", "", 400},
		{"SQL queue filter", "GET", "/v1/jobs?queue=" + qesc("x' OR '1'='1"), "", "", 400},
		{"SQL limit param", "GET", "/v1/jobs?limit=" + qesc("1; DROP TABLE spool_jobs"), "", "", 400},
		{"SQL after param", "GET", "/v1/jobs?after=" + qesc("1 OR 1=1"), "", "", 400},
		{"SQL dead queue filter", "DELETE", "/v1/dead?queue=" + qesc("x' OR '1'='1"), "", "", 422},
		{"SQL schedule name", "PUT", "/v1/schedules/" + esc("x'; DROP TABLE spool_schedules; --"), `{"spec":"@hourly","type":"noop"}`, "", 422},
		{"SQL schedule spec", "PUT", "/v1/schedules/x", `{"spec":"@hourly` + sqlDrop + `","type":"noop"}`, "", 422},
		{"SQL schedule zone", "PUT", "/v1/schedules/x", `{"spec":"@hourly","timezone":"UTC` + sqlDrop + `","type":"noop"}`, "", 422},
		{"SQL schedule type", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop` + sqlDrop + `"}`, "", 422},
		{"SQL schedule get", "GET", "/v1/schedules/" + esc("kept' OR '1'='1"), "", "", 404},
		{"SQL schedule delete", "DELETE", "/v1/schedules/" + esc("kept' OR '1'='1"), "", "", 404},
		{"SQL limit name", "PUT", "/v1/limits/queue/" + esc("emails'--"), `{"max_running":1}`, "", 422},
		{"SQL limit delete", "DELETE", "/v1/limits/queue/" + esc("emails' OR '1'='1"), "", "", 422},
		{"SQL limit type", "PUT", "/v1/limits/type/" + esc("noop' OR '1'='1"), `{"max_running":1}`, "", 422},
		{"SQL limit scope", "PUT", "/v1/limits/" + esc("queue' OR '1'='1") + "/emails", `{"max_running":1}`, "", 404},
		{"SQL pause", "POST", "/v1/queues/" + esc("x'; DROP TABLE spool_queues; --") + "/pause", "", "", 422},

		// Negative and enormous numbers.
		{"priority 1e309", "POST", "/v1/jobs", job(`,"priority":1e309`), "", 400},
		{"priority 2^63", "POST", "/v1/jobs", job(`,"priority":9223372036854775808`), "", 400},
		{"priority -2^63-1", "POST", "/v1/jobs", job(`,"priority":-9223372036854775809`), "", 400},
		{"priority 2^31", "POST", "/v1/jobs", job(`,"priority":2147483648`), "", 422},
		{"priority -0.0", "POST", "/v1/jobs", job(`,"priority":-0.0`), "", 400},
		{"priority 1.0", "POST", "/v1/jobs", job(`,"priority":1.0`), "", 400},
		{"max_attempts -0", "POST", "/v1/jobs", job(`,"max_attempts":-0`), "", 422},
		{"max_attempts 1e2", "POST", "/v1/jobs", job(`,"max_attempts":1e2`), "", 400},
		{"max_attempts -2^63", "POST", "/v1/jobs", job(`,"max_attempts":-9223372036854775808`), "", 422},
		{"delay 1e309s", "POST", "/v1/jobs", job(`,"delay":"1e309s"`), "", 422},
		{"delay max duration", "POST", "/v1/jobs", job(`,"delay":"2562047h47m16.854775807s"`), "", 422},
		{"delay overflow", "POST", "/v1/jobs", job(`,"delay":"2562048h"`), "", 422},
		{"timeout -0s", "POST", "/v1/jobs", job(`,"timeout":"-0s"`), "", 422},
		{"run_at year 10000", "POST", "/v1/jobs", job(`,"run_at":"10000-01-01T00:00:00Z"`), "", 422},
		{"run_at far ahead", "POST", "/v1/jobs", job(`,"run_at":"9999-12-31T23:59:59Z"`), "", 422},
		{"sleep ms 1e309", "POST", "/v1/jobs", `{"type":"sleep","payload":{"ms":1e309}}`, "", 422},
		{"sleep ms negative", "POST", "/v1/jobs", `{"type":"sleep","payload":{"ms":-1}}`, "", 422},
		{"order id 2^63", "POST", "/v1/jobs", `{"type":"generate_invoice","payload":{"order_id":9223372036854775808,"amount_cents":1}}`, "", 422},
		{"order id -0", "POST", "/v1/jobs", `{"type":"generate_invoice","payload":{"order_id":-0,"amount_cents":1}}`, "", 422},
		{"amount negative", "POST", "/v1/jobs", `{"type":"generate_invoice","payload":{"order_id":1,"amount_cents":-1}}`, "", 422},
		{"rate 1e309", "PUT", "/v1/limits/queue/emails", `{"rate_per_second":1e309}`, "", 400},
		{"rate -0", "PUT", "/v1/limits/queue/emails", `{"rate_per_second":-0}`, "", 422},
		{"rate 5e-324", "PUT", "/v1/limits/queue/emails", `{"rate_per_second":5e-324}`, "", 422},
		{"rate 1e7", "PUT", "/v1/limits/queue/emails", `{"rate_per_second":1e7}`, "", 422},
		{"max_running 1e10", "PUT", "/v1/limits/queue/emails", `{"max_running":10000000000}`, "", 422},
		{"max_running 2^63", "PUT", "/v1/limits/queue/emails", `{"max_running":9223372036854775808}`, "", 400},
		{"max_running -1", "PUT", "/v1/limits/queue/emails", `{"max_running":-1}`, "", 422},
		{"burst -1", "PUT", "/v1/limits/queue/emails", `{"max_running":1,"burst":-1}`, "", 422},
		{"burst 100001", "PUT", "/v1/limits/queue/emails", `{"max_running":1,"burst":100001}`, "", 422},
		{"schedule priority 1e309", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","priority":1e309}`, "", 400},
		{"schedule priority 1001", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","priority":1001}`, "", 422},
		{"schedule spec TZ= alone", "PUT", "/v1/schedules/x", `{"spec":"TZ=","type":"noop"}`, "", 422}, // panicked in cron v3.0.1
		{"schedule spec CRON_TZ= alone", "PUT", "/v1/schedules/x", `{"spec":"CRON_TZ=UTC","type":"noop"}`, "", 422},
		{"schedule every 2^63ns", "PUT", "/v1/schedules/x", `{"spec":"@every 9223372036854775808ns","type":"noop"}`, "", 422},
		{"list limit 1e3", "GET", "/v1/jobs?limit=1e3", "", "", 400},
		{"list limit -0", "GET", "/v1/jobs?limit=-0", "", "", 400},
		{"list limit 2^63", "GET", "/v1/jobs?limit=9223372036854775808", "", "", 400},
		{"list after 2^63", "GET", "/v1/jobs?after=9223372036854775808", "", "", 400},
		{"list after -0", "GET", "/v1/jobs?after=-0", "", "", 400},
		{"job id 2^63", "POST", "/v1/jobs/9223372036854775808/retry", "", "", 404},
		{"job id -1", "GET", "/v1/jobs/-1", "", "", 404},

		// Wrong content types.
		{"text/plain", "POST", "/v1/jobs", `{"type":"noop"}`, "text/plain", 415},
		{"no content type", "POST", "/v1/jobs", `{"type":"noop"}`, "-", 415},
		{"xml", "POST", "/v1/jobs/batch", `<jobs><job type="noop"/></jobs>`, "application/xml", 415},
		{"multipart", "PUT", "/v1/schedules/x", "--b\r\n\r\n{}\r\n--b--", "multipart/form-data; boundary=b", 415},
		{"form", "PUT", "/v1/limits/queue/emails", "max_running=1", "application/x-www-form-urlencoded", 415},
		{"json lookalike", "POST", "/v1/dead/retry", `{"type":"noop"}`, "application/jsonx", 415},
		{"malformed media type", "POST", "/v1/jobs", `{"type":"noop"}`, "application/json; charset", 415},
		{"UTF-16 body", "POST", "/v1/jobs", utf16Body(`{"type":"noop"}`), "application/json; charset=utf-16le", 400},
		{"gzip body", "POST", "/v1/jobs", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", "application/json", 400},

		// Duplicate keys: refused, not resolved.
		{"duplicate type", "POST", "/v1/jobs", `{"type":"noop","type":"fail"}`, "", 400},
		{"duplicate escaped", "POST", "/v1/jobs", `{"type":"noop","\u0074ype":"fail"}`, "", 400},
		{"duplicate in payload", "POST", "/v1/jobs", `{"type":"noop","payload":{"seq":1,"seq":2}}`, "", 400},
		{"duplicate in batch element", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop","queue":"a","queue":"b"}]}`, "", 400},
		{"duplicate jobs", "POST", "/v1/jobs/batch", `{"jobs":[],"jobs":[{"type":"noop"}]}`, "", 400},
		{"duplicate limit", "PUT", "/v1/limits/queue/emails", `{"max_running":1,"max_running":2}`, "", 400},
		{"duplicate schedule", "PUT", "/v1/schedules/x", `{"spec":"@hourly","spec":"@daily","type":"noop"}`, "", 400},
		{"duplicate dead filter", "POST", "/v1/dead/retry", `{"type":"noop","type":"fail"}`, "", 400},

		// Huge numbers of fields.
		{"20k unknown fields", "POST", "/v1/jobs", job(manyFields(20_000)), "", 400},
		{"20k payload fields", "POST", "/v1/jobs", `{"type":"noop","payload":{"seq":1` + manyFields(20_000) + `}}`, "", 422},
		{"20k fields in batch element", "POST", "/v1/jobs/batch", `{"jobs":[` + job(manyFields(20_000)) + `]}`, "", 400},
		{"1001 jobs in a batch", "POST", "/v1/jobs/batch", `{"jobs":[` + strings.Repeat(`{"type":"noop"},`, 1000) + `{"type":"noop"}]}`, "", 422},
		{"batch with one bad number", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"},{"type":"noop","priority":1e309}]}`, "", 400},
		{"2k schedule fields", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop"` + manyFields(2_000) + `}`, "", 400},

		// Methods no route has.
		{"TRACE", "TRACE", "/v1/jobs", "", "", 405},
		{"PROPFIND", "PROPFIND", "/v1/jobs/1", "", "", 405},
	}
}

// TestHostileInput sends each hostile request through the real router:
// each gets the expected 4xx with the usual error body, promptly, and the
// database is exactly as it was.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.seedAll()
	before := f.dbState()
	for _, tc := range hostileCases() {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		switch {
		case tc.contentType == "-":
		case tc.contentType != "":
			req.Header.Set("Content-Type", tc.contentType)
		case tc.body != "":
			req.Header.Set("Content-Type", "application/json")
		}
		done := make(chan *httptest.ResponseRecorder, 1)
		start := time.Now()
		go func() { done <- serve(f.h, req) }()
		var rec *httptest.ResponseRecorder
		select {
		case rec = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no answer after 20s", tc.name)
		}
		var b errBody
		err := json.Unmarshal(rec.Body.Bytes(), &b)
		switch {
		case rec.Code != tc.status:
			t.Errorf("%s: status %d, want %d; body %.200s", tc.name, rec.Code, tc.status, rec.Body)
		case err != nil || b.Error == "" || b.RequestID == "":
			t.Errorf("%s: body %.200s is not the error shape", tc.name, rec.Body)
		case rec.Body.Len() > 4096:
			t.Errorf("%s: %d-byte error body, want the input not echoed in full", tc.name, rec.Body.Len())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: answered after %s", tc.name, d)
		}
		if after := f.dbState(); after != before {
			t.Fatalf("%s: database changed:\nbefore %s\nafter  %s", tc.name, before, after)
		}
	}
}

// TestFiltersAreParameters sends SQL metacharacters in every filter: each
// gets a 4xx or matches nothing, and the database is unchanged, although
// dead jobs exist that a filter turned into SQL would match.
func TestFiltersAreParameters(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.seedAll()
	before := f.dbState()
	values := []string{
		`' OR '1'='1`, `noop' --`, `noop'; DROP TABLE spool_jobs; --`, `%`, `_`, `noop%`, `\`, `\'`, `" OR ""="`,
		`1 OR 1=1`, `$1`, `) OR (1=1`, `*/ OR /*`, `noop' UNION SELECT * FROM spool_jobs --`, `$$`, `E'\x00'`,
		"\x00", "\xff", "dead'", "noop\n",
	}
	type probe struct {
		method, path, body string
		empty              func(map[string]json.RawMessage) bool
	}
	emptyList := func(m map[string]json.RawMessage) bool { return string(m["jobs"]) == "[]" }
	zero := func(key string) func(map[string]json.RawMessage) bool {
		return func(m map[string]json.RawMessage) bool { return string(m[key]) == "0" }
	}
	for _, v := range values {
		q := url.QueryEscape(v)
		body, _ := json.Marshal(v)
		probes := []probe{
			{"GET", "/v1/jobs?status=" + q, "", emptyList},
			{"GET", "/v1/jobs?type=" + q, "", emptyList},
			{"GET", "/v1/jobs?queue=" + q, "", emptyList},
			{"GET", "/v1/jobs?status=dead&type=" + q, "", emptyList},
			{"GET", "/v1/jobs?limit=" + q, "", emptyList},
			{"GET", "/v1/jobs?after=" + q, "", emptyList},
			{"DELETE", "/v1/dead?type=" + q, "", zero("deleted")},
			{"DELETE", "/v1/dead?queue=" + q, "", zero("deleted")},
			{"POST", "/v1/dead/retry", `{"type":` + string(body) + `}`, zero("retried")},
			{"POST", "/v1/dead/retry", `{"queue":` + string(body) + `}`, zero("retried")},
		}
		for _, p := range probes {
			rec := f.do(p.method, p.path, p.body)
			var m map[string]json.RawMessage
			_ = json.Unmarshal(rec.Body.Bytes(), &m)
			switch {
			case rec.Code >= 400 && rec.Code < 500:
			case rec.Code == 200 && p.empty(m):
			default:
				t.Errorf("%s %s %s: %d %.200s; want a 4xx or no match", p.method, p.path, p.body, rec.Code, rec.Body)
			}
			if after := f.dbState(); after != before {
				t.Fatalf("%s %s %s changed the database", p.method, p.path, p.body)
			}
		}
	}
}

// TestMetacharactersStoredVerbatim: values that may hold anything are
// stored and returned byte for byte, never interpreted.
func TestMetacharactersStoredVerbatim(t *testing.T) {
	t.Parallel()
	f := setup(t, &httpapi.Opts{})
	const evil = `x'); DROP TABLE spool_jobs; -- \ " % _ $1 $$ */`
	body, _ := json.Marshal(map[string]any{
		"type": "send_email", "idempotency_key": evil,
		"payload": map[string]string{"to": "a@example.com", "subject": evil, "body": "<script>" + evil},
	})
	created := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", string(body)), 201)
	got := mustStatus[jobBody](t, f.do("GET", fmt.Sprintf("/v1/jobs/%d", created.Job.ID), ""), 200)
	if got.Job.IdempotencyKey == nil || *got.Job.IdempotencyKey != evil {
		t.Fatalf("key = %v, want %q", got.Job.IdempotencyKey, evil)
	}
	var p struct{ Subject, Body string }
	if err := json.Unmarshal(got.Job.Payload, &p); err != nil || p.Subject != evil || p.Body != "<script>"+evil {
		t.Fatalf("payload = %s, want the subject and body verbatim", got.Job.Payload)
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d jobs, want 1 (and the table still there)", n)
	}
	list := mustStatus[listBody](t, f.do("GET", "/v1/jobs?type=send_email", ""), 200)
	if len(list.Jobs) != 1 {
		t.Fatalf("listed %d jobs, want 1", len(list.Jobs))
	}
}
