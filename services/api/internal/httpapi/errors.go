package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolq/spool/shared/apiext"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/jobqueue"
)

// What a 503 asks clients to wait: long enough for a database failover,
// short enough not to stall a queue producer. A 429 (too many requests in
// flight) clears as soon as a request finishes: a second is plenty.
const (
	retryAfterSeconds         = 5
	overloadRetryAfterSeconds = 1
)

// apiError is a client-facing error with its status; everything else that
// reaches writeError is mapped from the queue's errors or becomes a 500.
type apiError struct {
	Status  int
	Message string
	Field   string // the request field at fault, if one is
	Index   *int   // the batch element at fault, if any
	// JobStatus is the job's current status, for a 409.
	JobStatus  jobqueue.Status
	KnownTypes []string // for an unknown job type
}

func (e *apiError) Error() string { return e.Message }

// problem is the one shape of every error response: an RFC 9457 problem
// details object. type is about:blank, so title is the status's phrase and
// detail says what went wrong; the members after detail are extensions.
// error repeats detail for clients written before problem details (the
// dashboard, scripts/k8s/e2eclient). status is the HTTP status, as RFC
// 9457 has it; a 409's job status is job_status.
type problem struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Status     int             `json:"status"`
	Detail     string          `json:"detail"`
	Error      string          `json:"error"`
	Field      string          `json:"field,omitempty"`
	Index      *int            `json:"index,omitempty"`
	JobStatus  jobqueue.Status `json:"job_status,omitempty"`
	KnownTypes []string        `json:"known_types,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
}

// problemType is RFC 9457's default: the status code says it all.
const problemType = "about:blank"

func newProblem(r *http.Request, ae *apiError) problem {
	title := http.StatusText(ae.Status)
	if ae.Status == statusClientClosed {
		title = "Client Closed Request"
	}
	return problem{Type: problemType, Title: title, Status: ae.Status, Detail: ae.Message, Error: ae.Message,
		Field: ae.Field, Index: ae.Index, JobStatus: ae.JobStatus, KnownTypes: ae.KnownTypes, RequestID: requestID(r.Context())}
}

// writeError answers with err's status and the common error body. Errors
// that are not the client's are recorded for the request's log line and not
// shown to the client.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.Status >= 500 && clientGone(r, err) {
		// Nobody reads this answer: the status says so in the log
		// (nginx's 499) instead of reporting a server error.
		ae = &apiError{Status: statusClientClosed, Message: "the client closed the request"}
	}
	if ae.Status >= 500 || unstorableText(err) {
		// The backstop below answering means a validator let such text
		// through: the log line says which query refused it.
		noteError(r.Context(), err)
	}
	switch ae.Status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(overloadRetryAfterSeconds))
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
	}
	writeBody(w, ae.Status, problemJSON, newProblem(r, ae))
}

// statusClientClosed is logged for a request whose client left before it
// was answered (nginx's 499, "client closed request").
const statusClientClosed = 499

// clientGone reports whether err is the request's own context ending
// because its client disconnected (not its deadline).
func clientGone(r *http.Request, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(r.Context().Err(), context.Canceled)
}

func toAPIError(err error) *apiError {
	var (
		ae      *apiError
		batch   *jobqueue.BatchError
		unknown *catalog.UnknownKindError
		bad     *jobqueue.InvalidError
		ext     *apiext.Error
	)
	switch {
	case errors.As(err, &batch): // before apiError, which it may wrap
		inner := toAPIError(batch.Err)
		return atIndex(inner, batch.Index, fmt.Sprintf("jobs[%d]", batch.Index)).(*apiError)
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &unknown):
		return &apiError{Status: http.StatusUnprocessableEntity, Field: "type",
			Message: fmt.Sprintf("unknown job type %q", clip(unknown.Kind)), KnownTypes: unknown.Known}
	case errors.As(err, &bad):
		return &apiError{Status: http.StatusUnprocessableEntity, Field: bad.Field, Message: clipTo(bad.Error(), maxMessage)}
	case errors.Is(err, jobqueue.ErrInvalidWorkflow):
		return &apiError{Status: http.StatusUnprocessableEntity, Message: clipTo(err.Error(), maxMessage)}
	case errors.As(err, &ext):
		return &apiError{Status: ext.Status, Field: ext.Field, Message: clipTo(ext.Message, maxMessage)}
	case errors.Is(err, jobqueue.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Message: "job not found"}
	case errors.Is(err, jobqueue.ErrInvalidState):
		return &apiError{Status: http.StatusConflict, Message: err.Error()}
	case errors.Is(err, jobqueue.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), store503(err):
		// The request deadline covers pool waits and queries alike: past it
		// the database is, for this client, unavailable.
		return &apiError{Status: http.StatusServiceUnavailable, Message: "database unavailable; retry later"}
	case transientConflict(err):
		return &apiError{Status: http.StatusServiceUnavailable, Message: "a concurrent request conflicted with this one; retry"}
	case unstorableText(err):
		return &apiError{Status: http.StatusBadRequest, Message: "the request holds text the database cannot store (U+0000 or invalid UTF-8)"}
	}
	return &apiError{Status: http.StatusInternalServerError, Message: "internal error"}
}

// store503 reports a connection failure that reached here without the
// library's translation (an application route's own query).
func store503(err error) bool {
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) && jobqueue.IsConnError(err)
}

// transientConflict reports whether PostgreSQL aborted err's transaction to
// break a deadlock (40P01) or a serialization conflict (40001): nothing was
// written, and the same request sent again succeeds.
func transientConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// unstorableText reports whether PostgreSQL refused err's query for text it
// cannot hold: U+0000 or invalid UTF-8 in text (22021), or \u0000 in jsonb
// (22P05). Validation refuses both before any query (jobqueue.ValidText,
// jobs.Normalize); this is the backstop, so that a value a validator missed
// is still the client's 400 and not a 500.
func unstorableText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05")
}

// Media types of the answers: errors are problem details (RFC 9457).
const (
	mediaJSON   = "application/json"
	problemJSON = "application/problem+json"
)

func writeJSON(w http.ResponseWriter, status int, v any) { writeBody(w, status, mediaJSON, v) }

func writeBody(w http.ResponseWriter, status int, mediaType string, v any) {
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// Not HTML-escaped: "<" as \u003c made an answer up to 6 times its
	// data (a payload of "<"s), and an application/json answer with
	// nosniff is never read as HTML.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a failed write means the client left
}
