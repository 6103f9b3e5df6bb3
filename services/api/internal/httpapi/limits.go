package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
)

// An in-flight slot is held only while a request's own work runs: its body
// is read into memory before the slot is taken (bufferBodies), and its
// answer is rendered into memory inside the slot and written to the network
// after the slot is released (limitInFlight). The memory both take is
// bounded by one budget, shared by every request.

// budget is a count of bytes that may be taken and given back; it never
// blocks. A nil *budget has no bound.
type budget struct {
	max  int64
	used atomic.Int64
}

func newBudget(max int64) *budget {
	if max <= 0 {
		return nil
	}
	return &budget{max: max}
}

// take reserves n bytes, or reports false if they would exceed the budget.
func (b *budget) take(n int64) bool {
	if b == nil {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

var errBudget = errors.New("buffer budget exhausted")

// readBudgeted reads r to its end or to limit bytes, taking budget as the
// bytes arrive, so a slow body holds only what it has sent. The caller
// gives back len of what is returned, on error too.
func readBudgeted(r io.Reader, limit int64, b *budget) ([]byte, error) {
	var buf []byte
	chunk := make([]byte, 32<<10)
	for int64(len(buf)) < limit {
		n, err := r.Read(chunk[:min(int64(len(chunk)), limit-int64(len(buf)))])
		if n > 0 {
			if !b.take(int64(n)) {
				return buf, errBudget
			}
			buf = append(buf, chunk[:n]...)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// isTimeout reports whether err is a passed read or write deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// bufferBodies reads a request's body (at most maxBody+1 bytes: the
// decoders still see one too large and answer 413) within timeout, before
// the request takes an in-flight slot. A body not in by then is answered
// 408 and its connection closed; a body that would exceed the buffer
// budget, 429.
func bufferBodies(maxBody int64, timeout time.Duration, b *budget, m *httpMetrics) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(timeout))
			body, err := readBudgeted(r.Body, maxBody+1, b)
			defer b.give(int64(len(body)))
			_ = rc.SetReadDeadline(time.Time{})
			switch {
			case err == nil:
			case errors.Is(err, errBudget):
				m.limited("buffered_bytes")
				w.Header().Set("Connection", "close")
				writeError(w, r, &apiError{Status: http.StatusTooManyRequests,
					Message: "the API is buffering its limit of request and response bytes (SPOOL_MAX_BUFFERED_BYTES); retry shortly"})
				return
			case isTimeout(err):
				m.limited("body_time")
				w.Header().Set("Connection", "close")
				writeError(w, r, &apiError{Status: http.StatusRequestTimeout,
					Message: fmt.Sprintf("the request body did not arrive within %s (SPOOL_BODY_TIMEOUT)", timeout)})
				return
			default:
				writeError(w, r, &apiError{Status: http.StatusBadRequest, Message: "cannot read the request body: " + clipTo(err.Error(), maxMessage)})
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
		})
	}
}

// bufferedResponse collects a handler's answer in memory, taking budget
// for it as it grows.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	budget *budget
	over   bool // a write did not fit the budget
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.over || !b.budget.take(int64(len(p))) {
		b.over = true
		return 0, errBudget
	}
	return b.body.Write(p)
}

// limitInFlight answers 429 with Retry-After at once when n requests are
// already being served, rather than letting them queue for a database
// connection until their deadline. n <= 0 means no limit. The handler
// answers into memory; the slot is released before the answer is written,
// so a client that does not read cannot hold it. An answer that does not
// fit the buffer budget is replaced by a 429.
// takeSlot takes one of slots, waiting up to wait (not at all if
// negative) or until the request's context ends.
func takeSlot(ctx context.Context, slots chan struct{}, wait time.Duration) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func limitInFlight(n int, wait time.Duration, b *budget, m *httpMetrics) mux.MiddlewareFunc {
	if n <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	slots := make(chan struct{}, n)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !takeSlot(r.Context(), slots, wait) {
				writeError(w, r, &apiError{Status: http.StatusTooManyRequests,
					Message: fmt.Sprintf("the API is serving its limit of %d requests at once; retry shortly", n)})
				return
			}
			held := true
			release := func() {
				if held {
					held = false
					<-slots
				}
			}
			defer release() // a panic too
			res := &bufferedResponse{header: w.Header(), budget: b}
			next.ServeHTTP(res, r)
			size := int64(res.body.Len())
			defer b.give(size)
			if res.over {
				release()
				m.limited("buffered_bytes")
				id := w.Header().Get("X-Request-ID")
				clear(w.Header())
				w.Header().Set("X-Request-ID", id)
				writeError(w, r, &apiError{Status: http.StatusTooManyRequests,
					Message: "the API is buffering its limit of request and response bytes (SPOOL_MAX_BUFFERED_BYTES); retry shortly"})
				return
			}
			release()
			if res.status == 0 {
				res.status = http.StatusOK
			}
			w.WriteHeader(res.status)
			if _, err := w.Write(res.body.Bytes()); err != nil && isTimeout(err) {
				m.limited("write_time")
			}
		})
	}
}
