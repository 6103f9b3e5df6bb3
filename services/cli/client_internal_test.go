package main

import (
	"net/http"
	"testing"
)

// TestParseAPIError reads both error shapes: today's and RFC 9457's.
func TestParseAPIError(t *testing.T) {
	t.Parallel()
	two := 2
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   apiError
	}{
		{"legacy", 409, nil, `{"error": "cannot cancel a completed job: ...", "status": "completed", "request_id": "R1"}`,
			apiError{HTTPStatus: 409, Message: "cannot cancel a completed job: ...", JobStatus: "completed", RequestID: "R1"}},
		{"legacy batch", 422, nil, `{"error": "jobs[2]: unknown job type \"x\"", "field": "jobs[2].type", "index": 2, "known_types": ["noop"]}`,
			apiError{HTTPStatus: 422, Message: `jobs[2]: unknown job type "x"`, Field: "jobs[2].type", Index: &two, KnownTypes: []string{"noop"}}},
		{"problem", 409, http.Header{"Content-Type": {"application/problem+json"}},
			`{"type": "about:blank", "title": "Conflict", "status": 409, "detail": "cannot retry a pending job", "error": "cannot retry a pending job", "job_status": "pending", "request_id": "R2"}`,
			apiError{HTTPStatus: 409, Message: "cannot retry a pending job", JobStatus: "pending", RequestID: "R2"}},
		{"problem title only", 404, nil, `{"title": "Not Found", "status": 404}`, apiError{HTTPStatus: 404, Message: "Not Found"}},
		{"not JSON", 502, http.Header{"X-Request-Id": {"R3"}}, "<html>bad gateway</html>",
			apiError{HTTPStatus: 502, Message: "Bad Gateway", RequestID: "R3"}},
		{"text", 503, nil, "upstream connect error\n", apiError{HTTPStatus: 503, Message: "upstream connect error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := parseAPIError(&http.Response{StatusCode: tt.status, Header: h}, []byte(tt.body))
			if got.HTTPStatus != tt.want.HTTPStatus || got.Message != tt.want.Message || got.Field != tt.want.Field ||
				got.JobStatus != tt.want.JobStatus || got.RequestID != tt.want.RequestID ||
				(got.Index == nil) != (tt.want.Index == nil) || (got.Index != nil && *got.Index != *tt.want.Index) ||
				len(got.KnownTypes) != len(tt.want.KnownTypes) {
				t.Fatalf("parseAPIError(%d, %s):\n got %+v\nwant %+v", tt.status, tt.body, *got, tt.want)
			}
		})
	}
}

// TestExitCodes maps every kind of error to its code.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{&apiError{HTTPStatus: 404}, exitNotFound},
		{&apiError{HTTPStatus: 422}, exitFailure},
		{&apiError{HTTPStatus: 503}, exitFailure},
		{&unreachableError{what: "x", err: http.ErrServerClosed}, exitUnreachable},
		{usagef("bad"), exitUsage},
		{&failure{err: http.ErrBodyNotAllowed}, exitFailure},
		{http.ErrBodyNotAllowed, exitUsage}, // unclassified: cobra's parsing
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
