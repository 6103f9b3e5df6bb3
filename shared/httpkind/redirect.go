package httpkind

import (
	"fmt"
	"net/http"
)

// MaxRedirects is the most redirects a job that follows them takes.
const MaxRedirects = 10

// followKey marks a request's context when its job follows redirects.
type followKey struct{}

// RedirectError is a redirect the kind will not take: the job fails
// permanently.
type RedirectError struct{ Reason string }

func (e *RedirectError) Error() string { return "redirect refused: " + e.Reason }

// redirect is the client's CheckRedirect: a redirect is not followed
// unless the job asks (its response is then the job's outcome, a
// permanent failure); a followed one must be to http(s) without
// credentials, never from https down to http, and to a destination the
// allow list permits, by name here and by address when the transport
// connects, as for the first request. Go's client drops Authorization and
// Cookie on a redirect to another host; their sealed values are bound to
// the first host in any case.
func (s *sender) redirect(req *http.Request, via []*http.Request) error {
	if follow, _ := req.Context().Value(followKey{}).(bool); !follow {
		return http.ErrUseLastResponse
	}
	prev, next := via[len(via)-1].URL, req.URL
	switch {
	case len(via) > MaxRedirects:
		return &RedirectError{Reason: fmt.Sprintf("stopped after %d redirects", MaxRedirects)}
	case next.Scheme != "http" && next.Scheme != "https":
		return &RedirectError{Reason: fmt.Sprintf("to a %s: URL", next.Scheme)}
	case prev.Scheme == "https" && next.Scheme == "http":
		return &RedirectError{Reason: "from https down to http"}
	case next.User != nil:
		return &RedirectError{Reason: "to a URL with credentials"}
	}
	return s.allow.checkURL(req.Context(), next)
}
