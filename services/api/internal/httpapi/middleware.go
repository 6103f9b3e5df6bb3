package httpapi

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/gorilla/mux"
)

// requestInfo is filled in as a request passes through the layers and read
// by observe once it is answered. It lives in the request's context.
type requestInfo struct {
	id    string
	route string // mux path template, or "unmatched"
	err   error  // a server-side error behind a 5xx, for the log line
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// requestID is the request's id, or "" outside observe.
func requestID(ctx context.Context) string {
	if info := infoFrom(ctx); info != nil {
		return info.id
	}
	return ""
}

// noteError records err for the request's log line.
func noteError(ctx context.Context, err error) {
	if info := infoFrom(ctx); info != nil {
		info.err = err
	}
}

// saneRequestID accepts a caller's X-Request-ID only if it is short and
// plain, so it can neither forge log fields nor bloat them.
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// observe gives each request an id (the caller's X-Request-ID if sane),
// echoes it in the response, and after the answer writes one log line and
// the HTTP metrics. It wraps the whole router, so 404s and 405s count too.
func observe(m *httpMetrics, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: r.Header.Get("X-Request-ID"), route: "unmatched"}
		if !saneRequestID.MatchString(info.id) {
			info.id = rand.Text()
		}
		w.Header().Set("X-Request-ID", info.id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		ctx, endSpan := startSpan(r)
		// Deferred so that even an aborted response is logged and counted.
		defer func() {
			elapsed := time.Since(start)
			m.observe(info.route, r.Method, rec.status, elapsed)
			logRequest(ctx, log, r, info, rec.status, elapsed)
			endSpan(info, rec.status)
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, infoKey{}, info)))
	})
}

// maxLoggedPath bounds the path a request line logs: anyone can send a
// 60 KiB path, with or without a token.
const maxLoggedPath = 256

func logRequest(ctx context.Context, log *slog.Logger, r *http.Request, info *requestInfo, status int, elapsed time.Duration) {
	level := slog.LevelInfo
	switch {
	case status == statusClientClosed:
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn // an outage: the database's alerts, not ours
	case status >= 500:
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("route", info.route), slog.String("path", clipTo(r.URL.Path, maxLoggedPath)),
		slog.Int("status", status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("request_id", info.id),
	}
	if info.err != nil {
		attrs = append(attrs, slog.String("error", info.err.Error()))
	}
	log.LogAttrs(ctx, level, "http request", attrs...)
}

// recordRoute notes the matched route's template for logs and metrics.
// As router middleware it runs only for matched routes; the rest stay
// "unmatched", which keeps the route label bounded.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, route := infoFrom(r.Context()), mux.CurrentRoute(r); info != nil && route != nil {
			if tmpl, err := route.GetPathTemplate(); err == nil {
				info.route = tmpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withTimeout bounds a request's work, so a stalled database answers 503
// within d instead of holding the client and a pool connection.
func withTimeout(d time.Duration) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// recoverPanics turns a handler panic into a 500 with the usual error body.
// If the response had already begun, the connection is aborted instead, so
// the client cannot take a truncated answer for a whole one.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { // net/http's own way to abort a response: let it through
				panic(v)
			}
			noteError(r.Context(), fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			if rec.wrote {
				panic(http.ErrAbortHandler)
			}
			writeError(w, r, &apiError{Status: http.StatusInternalServerError, Message: "internal error"})
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
