package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
)

// strictCases are issue 17's parser differentials: bodies encoding/json
// read differently from what they say, each now refused with 400.
func strictCases() []hostileCase {
	return []hostileCase{
		// Keys match exactly: a case-folded twin is an unknown field, not
		// a duplicate that slipped past the duplicate check.
		{"case-folded twin of type", "POST", "/v1/jobs", `{"type":"noop","TYPE":"fail"}`, "", 400},
		{"case-folded twin, twin first", "POST", "/v1/jobs", `{"Type":"fail","type":"noop"}`, "", 400},
		{"case-folded type alone", "POST", "/v1/jobs", `{"TYPE":"noop"}`, "", 400},
		{"Kelvin sign escaped", "POST", "/v1/jobs", `{"type":"noop","idempotency_\u212aey":"k"}`, "", 400},
		{"Kelvin sign raw", "POST", "/v1/jobs", "{\"type\":\"noop\",\"idempotency_\u212aey\":\"k\"}", "", 400},
		{"long s for s", "POST", "/v1/jobs", `{"type":"noop","queue":"emails","\u017fueue":"x"}`, "", 400},
		{"case-folded batch element", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop","TYPE":"fail"}]}`, "", 400},
		{"case-folded jobs", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop"}],"Jobs":[]}`, "", 400},
		{"case-folded workflow step", "POST", "/v1/workflows", `{"name":"w","steps":[{"name":"a","type":"noop","TYPE":"fail"}]}`, "", 400},
		{"case-folded schedule", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","Spec":"@daily"}`, "", 400},
		{"case-folded limit", "PUT", "/v1/limits/queue/emails", `{"max_running":1,"MAX_RUNNING":100}`, "", 400},
		{"case-folded dead filter", "POST", "/v1/dead/retry", `{"type":"noop","TYPE":"fail"}`, "", 400},

		// Lone surrogates are refused, not turned into U+FFFD (where
		// these three keys were one).
		{"lone high surrogate key", "POST", "/v1/jobs", `{"type":"noop","idempotency_key":"\ud800"}`, "", 400},
		{"last high surrogate key", "POST", "/v1/jobs", `{"type":"noop","idempotency_key":"\udbff"}`, "", 400},
		{"lone low surrogate key", "POST", "/v1/jobs", `{"type":"noop","idempotency_key":"\udfff"}`, "", 400},
		{"reversed pair key", "POST", "/v1/jobs", `{"type":"noop","idempotency_key":"\udc00\ud800"}`, "", 400},
		{"surrogate after a taken key", "POST", "/v1/jobs", `{"type":"noop","idempotency_key":"seed\ud800"}`, "", 400},
		{"lone surrogate in payload", "POST", "/v1/jobs", `{"type":"fail","payload":{"message":"\ud800"}}`, "", 400},
		{"lone surrogate in a key", "POST", "/v1/jobs", `{"type":"fail","payload":{"\udfff":1}}`, "", 400},
		{"lone surrogate in batch", "POST", "/v1/jobs/batch", `{"jobs":[{"type":"noop","idempotency_key":"\ud800"}]}`, "", 400},
		{"lone surrogate in schedule", "PUT", "/v1/schedules/x", `{"spec":"@hourly","type":"noop","queue":"\udbff"}`, "", 400},
		{"lone surrogate in workflow", "POST", "/v1/workflows", `{"name":"w\udfff","steps":[{"name":"a","type":"noop"}]}`, "", 400},
		{"lone surrogate in dead filter", "POST", "/v1/dead/retry", `{"type":"\ud800"}`, "", 400},
	}
}

// TestParserDifferentialRefused: each differential is refused with 400
// and the usual error body, and nothing is written.
func TestParserDifferentialRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.seedAll()
	f.refuseAll(strictCases())
}

// TestStrictErrorsNameTheField: the refusals say which field is at fault.
func TestStrictErrorsNameTheField(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, tc := range []errorCase{
		{name: "case-folded twin", method: "POST", path: "/v1/jobs", body: `{"type":"noop","TYPE":"fail"}`, status: 400, field: "TYPE"},
		{name: "Kelvin sign", method: "POST", path: "/v1/jobs", body: `{"type":"noop","idempotency_\u212aey":"k"}`, status: 400, field: "idempotency_\u212aey"},
		{name: "lone surrogate", method: "POST", path: "/v1/jobs", body: `{"type":"noop","idempotency_key":"\ud800"}`, status: 400, field: "idempotency_key"},
		{name: "batch element case-folded", method: "POST", path: "/v1/jobs/batch", body: `{"jobs":[{"type":"noop"},{"type":"noop","Queue":"x"}]}`, status: 400, field: "jobs[1].Queue", index: at(1)},
		{name: "workflow step wrong type", method: "POST", path: "/v1/workflows", body: `{"name":"w","steps":[{"name":"a","type":"noop"},{"name":"b","type":"noop","priority":"high"}]}`, status: 400, field: "steps[1].priority"},
		{name: "duplicate after unescaping", method: "POST", path: "/v1/jobs", body: `{"type":"noop","\u0074ype":"fail"}`, status: 400, field: "type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, f.do(tc.method, tc.path, tc.body), tc)
		})
	}
	if n := f.count(); n != 0 {
		t.Fatalf("%d jobs written, want none", n)
	}
}

// TestValidSurrogatePairAccepted: a proper pair is one character, kept.
func TestValidSurrogatePairAccepted(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	b := mustStatus[jobBody](t, f.do("POST", "/v1/jobs", `{"type":"noop","idempotency_key":"\ud83d\ude00"}`), http.StatusCreated)
	got := mustStatus[jobBody](t, f.do("GET", fmt.Sprint("/v1/jobs/", b.Job.ID), ""), http.StatusOK)
	if k := got.Job.IdempotencyKey; k == nil || *k != "😀" {
		t.Fatalf("idempotency key %v, want 😀", k)
	}
}
