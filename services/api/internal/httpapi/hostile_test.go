package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/jobqueue"
)

// stateTables are the tables dbState must find: Spool's own.
var stateTables = []string{
	"spool.spool_jobs", "spool.spool_schedules", "spool.spool_limits", "spool.spool_queues", "spool.spool_workflows", "spool.spool_effects",
	"spool.spool_kinds", "spool.spool_workers",
}

// dbState is the row count and a content checksum of every table of the
// database (so a table added later is covered too), failing unless those
// the API can write are among them. Sequences are left out: a refused insert
// may use up an identity value without leaving a row.
func (f *fixture) dbState() string {
	f.t.Helper()
	ctx := context.Background()
	rows, err := f.db.Pool.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		f.t.Fatalf("list tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatalf("list tables: %v", err)
	}
	for _, want := range stateTables {
		if !slices.Contains(tables, want) {
			f.t.Fatalf("table %s is missing from %v", want, tables)
		}
	}
	var out []string
	for _, table := range tables {
		var n int64
		var sum string
		schema, name, _ := strings.Cut(table, ".")
		err := f.db.Pool.QueryRow(ctx, `SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM `+
			pgx.Identifier{schema, name}.Sanitize()+` t`).Scan(&n, &sum)
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
	for _, p := range []jobqueue.EnqueueParams{{}, {Queue: "emails"}, {Kind: "fail", Payload: map[string]string{"message": "x"}}} {
		f.exec(makeDead, f.enqueue(p))
	}
	f.exec(makeCompleted, f.enqueue(jobqueue.EnqueueParams{}))
	f.enqueue(jobqueue.EnqueueParams{IdempotencyKey: "seed"})
	for _, r := range []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "/v1/schedules/kept", `{"spec":"@hourly","type":"noop"}`, 200},
		{"PUT", "/v1/limits/queue/emails", `{"max_running":3}`, 200},
		{"POST", "/v1/queues/paused/pause", "", 200},
		{"POST", "/v1/workflows", `{"name":"kept","steps":[{"name":"a","type":"noop"},{"name":"b","type":"noop","depends_on":["a"]}]}`, 201},
	} {
		if rec := f.do(r.method, r.path, r.body); rec.Code != r.status {
			f.t.Fatalf("seed %s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
	// What workers would have recorded.
	f.exec(`INSERT INTO spool.spool_effects (key, job_id) VALUES ('email:1', 1)`)
	f.exec(`INSERT INTO spool.spool_workers (id, kinds) VALUES ('w1', '{noop}')`)
	for _, table := range stateTables {
		var n int64
		if err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil || n == 0 {
			f.t.Fatalf("seed: %s has %d rows (%v), want some", table, n, err)
		}
	}
}

type hostileCase struct {
	name         string
	method, path string
	body         string
	contentType  string // default application/json with a body or an unsafe method; "-" for none
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
	const sqlDrop = `'; DROP TABLE spool.spool_jobs; --`
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
		{"lone surrogate escape", "POST", "/v1/jobs", `{"type":"noop\ud800"}`, "", 400}, // refused, not decoded as U+FFFD

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
		{"SQL priority", "POST", "/v1/jobs", job(`,"priority":"1; DROP TABLE spool.spool_jobs"`), "", 400},
		{"SQL run_at", "POST", "/v1/jobs", job(`,"run_at":"now()"`), "", 422},
		{"SQL delay", "POST", "/v1/jobs", job(`,"delay":"1s` + sqlDrop + `"`), "", 422},
		{"SQL timeout", "POST", "/v1/jobs", job(`,"timeout":"interval '1 day'"`), "", 422},
		{"SQL payload type", "POST", "/v1/jobs", `{"type":"sleep","payload":{"ms":"1); DROP TABLE spool.spool_jobs; --"}}`, "", 422},
		{"SQL job id", "GET", "/v1/jobs/" + esc("1 OR 1=1"), "", "", 404},
		{"SQL cancel id", "POST", "/v1/jobs/" + esc("1;DELETE FROM spool.spool_jobs") + "/cancel", "", "", 404},
		{"SQL status filter", "GET", "/v1/jobs?status=" + qesc("pending' OR '1'='1"), "", "", 400},
		{"SQL queue filter", "GET", "/v1/jobs?queue=" + qesc("x' OR '1'='1"), "", "", 400},
		{"SQL limit param", "GET", "/v1/jobs?limit=" + qesc("1; DROP TABLE spool.spool_jobs"), "", "", 400},
		{"SQL after param", "GET", "/v1/jobs?after=" + qesc("1 OR 1=1"), "", "", 400},
		{"SQL dead queue filter", "DELETE", "/v1/dead?queue=" + qesc("x' OR '1'='1"), "", "", 422},
		{"SQL schedule name", "PUT", "/v1/schedules/" + esc("x'; DROP TABLE spool.spool_schedules; --"), `{"spec":"@hourly","type":"noop"}`, "", 422},
		{"SQL schedule spec", "PUT", "/v1/schedules/x", `{"spec":"@hourly` + sqlDrop + `","type":"noop"}`, "", 422},
		{"SQL schedule zone", "PUT", "/v1/schedules/x", `{"spec":"@hourly","timezone":"UTC` + sqlDrop + `","type":"noop"}`, "", 422},
		{"SQL schedule type", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop` + sqlDrop + `"}`, "", 422},
		{"SQL schedule get", "GET", "/v1/schedules/" + esc("kept' OR '1'='1"), "", "", 404},
		{"SQL schedule delete", "DELETE", "/v1/schedules/" + esc("kept' OR '1'='1"), "", "", 404},
		{"SQL limit name", "PUT", "/v1/limits/queue/" + esc("emails'--"), `{"max_running":1}`, "", 422},
		{"SQL limit delete", "DELETE", "/v1/limits/queue/" + esc("emails' OR '1'='1"), "", "", 422},
		{"SQL limit type", "PUT", "/v1/limits/type/" + esc("noop' OR '1'='1"), `{"max_running":1}`, "", 422},
		{"SQL limit scope", "PUT", "/v1/limits/" + esc("queue' OR '1'='1") + "/emails", `{"max_running":1}`, "", 404},
		{"SQL pause", "POST", "/v1/queues/" + esc("x'; DROP TABLE spool.spool_queues; --") + "/pause", "", "", 422},

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

// workflowCases are hostile POST /v1/workflows requests (U+0000 and invalid UTF-8 are in unstorableTextCases).
func workflowCases() []hostileCase {
	const sqlDrop = `'; DROP TABLE spool.spool_workflows; --`
	wf := func(steps string) string { return `{"name":"w","steps":[` + steps + `]}` }
	step := func(name, fields string) string { return `{"name":"` + name + `","type":"noop"` + fields + `}` }
	manySteps := func(n int, deps func(i int) string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(step(fmt.Sprintf("s%d", i), deps(i)))
		}
		return wf(b.String())
	}
	none := func(int) string { return "" }
	ring := func(n int) func(int) string {
		return func(i int) string { return fmt.Sprintf(`,"depends_on":["s%d"]`, (i+1)%n) }
	}
	return []hostileCase{
		// Workflows: malformed JSON and wrong shapes.
		{"workflow trailing comma", "POST", "/v1/workflows", wf(step("a", "") + ","), "", 400},
		{"workflow truncated", "POST", "/v1/workflows", `{"name":"w","steps":[{"name":"a"`, "", 400},
		{"workflow empty body", "POST", "/v1/workflows", "", "", 400},
		{"workflow array body", "POST", "/v1/workflows", `[` + wf(step("a", "")) + `]`, "", 400},
		{"workflow null body", "POST", "/v1/workflows", `null`, "", 422},
		{"workflow two values", "POST", "/v1/workflows", wf(step("a", "")) + wf(step("a", "")), "", 400},
		{"workflow name a number", "POST", "/v1/workflows", `{"name":1,"steps":[` + step("a", "") + `]}`, "", 400},
		{"workflow steps an object", "POST", "/v1/workflows", `{"name":"w","steps":{"a":{"type":"noop"}}}`, "", 400},
		{"workflow depends_on a string", "POST", "/v1/workflows", wf(step("a", "") + "," + step("b", `,"depends_on":"a"`)), "", 400},
		{"workflow continue_on_failure a string", "POST", "/v1/workflows", wf(step("a", `,"continue_on_failure":"yes"`)), "", 400},
		{"workflow unknown field", "POST", "/v1/workflows", `{"name":"w","steps":[` + step("a", "") + `],"on_failure":{"type":"noop"}}`, "", 400},
		{"workflow unknown step field", "POST", "/v1/workflows", wf(step("a", `,"parents":[1]`)), "", 400},
		{"workflow duplicate name key", "POST", "/v1/workflows", `{"name":"w","name":"v","steps":[` + step("a", "") + `]}`, "", 400},
		{"workflow duplicate step key", "POST", "/v1/workflows", wf(`{"name":"a","name":"b","type":"noop"}`), "", 400},

		// Deep nesting.
		{"workflow 100k nested arrays as body", "POST", "/v1/workflows", nested("[", "]", 100_000), "", 400},
		{"workflow 100k nested step payload", "POST", "/v1/workflows", wf(step("a", `,"payload":`+nested("[", "]", 100_000))), "", 400},
		{"workflow 100k nested depends_on", "POST", "/v1/workflows", wf(step("a", `,"depends_on":`+nested("[", "]", 100_000))), "", 400},
		{"workflow 20k nested objects in steps", "POST", "/v1/workflows", `{"name":"w","steps":[` + strings.Repeat(`{"name":`, 20_000) + `"a"` + strings.Repeat("}", 20_000) + `]}`, "", 400},

		// Huge strings and counts.
		{"1 MB workflow name", "POST", "/v1/workflows", `{"name":"` + strings.Repeat("w", 1_000_000) + `","steps":[` + step("a", "") + `]}`, "", 422},
		{"129-byte workflow name", "POST", "/v1/workflows", `{"name":"` + strings.Repeat("é", 64) + `w","steps":[` + step("a", "") + `]}`, "", 422},
		{"1 MB step name", "POST", "/v1/workflows", wf(step(strings.Repeat("s", 1_000_000), "")), "", 422},
		{"1 MB depends_on entry", "POST", "/v1/workflows", wf(step("a", `,"depends_on":["`+strings.Repeat("d", 1_000_000)+`"]`)), "", 422},
		{"10k depends_on entries", "POST", "/v1/workflows", wf(step("a", "") + "," + step("b", `,"depends_on":["a"`+strings.Repeat(`,"a"`, 10_000)+`]`)), "", 422},
		{"2 MB step payload", "POST", "/v1/workflows", wf(`{"name":"a","type":"fail","payload":{"message":"` + strings.Repeat("x", 2<<20) + `"}}`), "", 413},
		{"9 MB workflow body", "POST", "/v1/workflows", `{"name":"` + strings.Repeat("w", 9<<20) + `"}`, "", 413},
		{"1001 steps", "POST", "/v1/workflows", manySteps(1001, none), "", 413},
		{"no steps", "POST", "/v1/workflows", wf(""), "", 422},
		{"null steps", "POST", "/v1/workflows", `{"name":"w","steps":null}`, "", 422},

		// The DAG.
		{"self dependency", "POST", "/v1/workflows", wf(step("a", `,"depends_on":["a"]`)), "", 422},
		{"two-step cycle", "POST", "/v1/workflows", wf(step("a", `,"depends_on":["b"]`) + "," + step("b", `,"depends_on":["a"]`)), "", 422},
		{"cycle behind a root", "POST", "/v1/workflows", wf(step("r", "") + "," + step("a", `,"depends_on":["r","c"]`) + "," + step("b", `,"depends_on":["a"]`) + "," + step("c", `,"depends_on":["b"]`)), "", 422},
		{"1000-step ring", "POST", "/v1/workflows", manySteps(1000, ring(1000)), "", 422},
		{"unknown dependency", "POST", "/v1/workflows", wf(step("a", `,"depends_on":["ghost"]`)), "", 422},
		{"dependency listed twice", "POST", "/v1/workflows", wf(step("a", "") + "," + step("b", `,"depends_on":["a","a"]`)), "", 422},
		{"step name used twice", "POST", "/v1/workflows", wf(step("a", "") + "," + step("a", "")), "", 422},
		{"empty step name", "POST", "/v1/workflows", wf(step("", "")), "", 422},
		{"empty workflow name", "POST", "/v1/workflows", `{"name":"","steps":[` + step("a", "") + `]}`, "", 422},

		// Step fields, as for a job.
		{"unknown step type", "POST", "/v1/workflows", wf(`{"name":"a","type":"teleport"}`), "", 422},
		{"SQL step type", "POST", "/v1/workflows", wf(`{"name":"a","type":"noop` + sqlDrop + `"}`), "", 422},
		{"SQL step queue", "POST", "/v1/workflows", wf(step("a", `,"queue":"q`+sqlDrop+`"`)), "", 422},
		{"step priority 1e309", "POST", "/v1/workflows", wf(step("a", `,"priority":1e309`)), "", 400},
		{"step priority 2^63", "POST", "/v1/workflows", wf(step("a", `,"priority":9223372036854775808`)), "", 400},
		{"step priority 1001", "POST", "/v1/workflows", wf(step("a", "") + "," + step("b", `,"priority":1001`)), "", 422},
		{"step max_attempts -1", "POST", "/v1/workflows", wf(step("a", `,"max_attempts":-1`)), "", 422},
		{"step timeout 1e309s", "POST", "/v1/workflows", wf(step("a", `,"timeout":"1e309s"`)), "", 422},
		{"step run_at", "POST", "/v1/workflows", wf(step("a", `,"run_at":"2030-01-01T00:00:00Z"`)), "", 422},
		{"step delay", "POST", "/v1/workflows", wf(step("a", `,"delay":"1s"`)), "", 422},
		{"step idempotency key", "POST", "/v1/workflows", wf(step("a", `,"idempotency_key":"k"`)), "", 422},
		{"step bad payload", "POST", "/v1/workflows", wf(`{"name":"a","type":"sleep","payload":{"ms":-1}}`), "", 422},

		// Wrong content types.
		{"workflow text/plain", "POST", "/v1/workflows", wf(step("a", "")), "text/plain", 415},
		{"workflow no content type", "POST", "/v1/workflows", wf(step("a", "")), "-", 415},
		{"workflow form", "POST", "/v1/workflows", "name=w", "application/x-www-form-urlencoded", 415},
		{"workflow UTF-16", "POST", "/v1/workflows", utf16Body(wf(step("a", ""))), "application/json; charset=utf-16le", 400},

		// Workflow ids.
		{"SQL workflow id", "GET", "/v1/workflows/" + url.PathEscape("1 OR 1=1"), "", "", 404},
		{"workflow id 2^63", "POST", "/v1/workflows/9223372036854775808/cancel", "", "", 404},
		{"workflow id -1", "POST", "/v1/workflows/-1/cancel", "", "", 404},
		{"unknown workflow", "POST", "/v1/workflows/424242/cancel", "", "", 404},
	}
}

// TestHostileInput sends each hostile request through the real router:
// each gets the expected 4xx with the usual error body, promptly, and the
// database is exactly as it was.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.seedAll()
	f.refuseAll(append(hostileCases(), workflowCases()...))
}

// refuseAll sends each case and fails unless it gets its status with the
// usual error body, promptly, leaving the database exactly as it was.
func (f *fixture) refuseAll(cases []hostileCase) {
	t := f.t
	t.Helper()
	before := f.dbState()
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		switch {
		case tc.contentType == "-":
		case tc.contentType != "":
			req.Header.Set("Content-Type", tc.contentType)
		case tc.body != "" || unsafeMethod(tc.method):
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
			t.Errorf("%s: status %d, want %d; body %.200q", tc.name, rec.Code, tc.status, rec.Body)
		case err != nil || b.Error == "" || b.RequestID == "":
			t.Errorf("%s: body %.200q is not the error shape", tc.name, rec.Body)
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

// TestUnstorableTextRefused: PostgreSQL's text cannot hold U+0000 or
// invalid UTF-8 (SQLSTATE 22021), so every string field that reaches a
// text column, sent with either, is refused with a 4xx before it gets
// there, never answered 500.
func TestUnstorableTextRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.seedAll()
	f.refuseAll(unstorableTextCases())
}

func unstorableTextCases() []hostileCase {
	wf := func(steps string) string { return `{"name":"w","steps":[` + steps + `]}` }
	return []hostileCase{
		// Workflows: the name goes to spool.spool_workflows.name, step names to
		// spool.spool_jobs.step.
		{"NUL workflow name", "POST", "/v1/workflows", `{"name":"w\u0000","steps":[{"name":"a","type":"noop"}]}`, "", 422},
		{"NUL-only workflow name", "POST", "/v1/workflows", `{"name":"\u0000","steps":[{"name":"a","type":"noop"}]}`, "", 422},
		{"NUL step name", "POST", "/v1/workflows", wf(`{"name":"a\u0000","type":"noop"}`), "", 422},
		{"NUL second step name", "POST", "/v1/workflows", wf(`{"name":"a","type":"noop"},{"name":"\u0000b","type":"noop","depends_on":["a"]}`), "", 422},
		{"NUL depends_on of a NUL step", "POST", "/v1/workflows", wf(`{"name":"\u0000","type":"noop"},{"name":"b","type":"noop","depends_on":["\u0000"]}`), "", 422},
		{"NUL depends_on", "POST", "/v1/workflows", wf(`{"name":"a","type":"noop"},{"name":"b","type":"noop","depends_on":["a\u0000"]}`), "", 422},
		{"NUL step type", "POST", "/v1/workflows", wf(`{"name":"a","type":"noop\u0000"}`), "", 422},
		{"NUL step queue", "POST", "/v1/workflows", wf(`{"name":"a","type":"noop","queue":"q\u0000"}`), "", 422},
		{"NUL step payload", "POST", "/v1/workflows", wf(`{"name":"a","type":"fail","payload":{"message":"\u0000"}}`), "", 422},
		{"invalid UTF-8 workflow name", "POST", "/v1/workflows", "{\"name\":\"w\xff\",\"steps\":[{\"name\":\"a\",\"type\":\"noop\"}]}", "", 400},
		{"invalid UTF-8 step name", "POST", "/v1/workflows", wf("{\"name\":\"a\xc3\x28\",\"type\":\"noop\"}"), "", 400},
		{"invalid UTF-8 depends_on", "POST", "/v1/workflows", wf("{\"name\":\"a\",\"type\":\"noop\"},{\"name\":\"b\",\"type\":\"noop\",\"depends_on\":[\"\xed\xa0\x80\"]}"), "", 400},

		// Jobs, in case any of these miss it.
		{"NUL job type", "POST", "/v1/jobs", `{"type":"\u0000"}`, "", 422},
		{"NUL job queue", "POST", "/v1/jobs", `{"type":"noop","queue":"\u0000"}`, "", 422},
		{"NUL idempotency key", "POST", "/v1/jobs", `{"type":"noop","idempotency_key":"\u0000"}`, "", 422},
		{"NUL batch type", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"},{"type":"noop\u0000"}]}`, "", 422},
		{"NUL batch queue", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop","queue":"a\u0000"}]}`, "", 422},
		{"NUL batch key", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop","idempotency_key":"k\u0000"}]}`, "", 422},
		{"invalid UTF-8 job type", "POST", "/v1/jobs", "{\"type\":\"\xff\"}", "", 400},
		{"invalid UTF-8 job queue", "POST", "/v1/jobs", "{\"type\":\"noop\",\"queue\":\"\xff\"}", "", 400},
		{"invalid UTF-8 idempotency key", "POST", "/v1/jobs", "{\"type\":\"noop\",\"idempotency_key\":\"k\xff\"}", "", 400},
		{"NUL type filter", "GET", "/v1/jobs?type=noop%00", "", "", 400},
		{"NUL queue filter", "GET", "/v1/jobs?queue=default%00", "", "", 400},
		{"NUL status filter", "GET", "/v1/jobs?status=dead%00", "", "", 400},
		{"invalid UTF-8 type filter", "GET", "/v1/jobs?type=noop%FF", "", "", 400},
		{"invalid UTF-8 queue filter", "GET", "/v1/jobs?queue=%C0%AF", "", "", 400},
		{"invalid UTF-8 status filter", "GET", "/v1/jobs?status=%ED%A0%80", "", "", 400},
		{"NUL dead delete type", "DELETE", "/v1/dead?type=noop%00", "", "", 422},
		{"NUL dead delete queue", "DELETE", "/v1/dead?queue=%00", "", "", 422},
		{"invalid UTF-8 dead delete type", "DELETE", "/v1/dead?type=%FF", "", "", 422},
		{"NUL dead retry type", "POST", "/v1/dead/retry", `{"type":"noop\u0000"}`, "", 422},
		{"NUL dead retry queue", "POST", "/v1/dead/retry", `{"queue":"emails\u0000"}`, "", 422},
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
		`' OR '1'='1`, `noop' --`, `noop'; DROP TABLE spool.spool_jobs; --`, `%`, `_`, `noop%`, `\`, `\'`, `" OR ""="`,
		`1 OR 1=1`, `$1`, `) OR (1=1`, `*/ OR /*`, `noop' UNION SELECT * FROM spool.spool_jobs --`, `$$`, `E'\x00'`,
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
	const evil = `x'); DROP TABLE spool.spool_jobs; -- \ " % _ $1 $$ */`
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
