package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// refuseCrossSite protects the state-changing routes from cross-site
// request forgery, with authentication off too (as make run starts the
// API): a page on another port of localhost could pause a queue with a
// no-cors POST, which a browser sends without asking (issue 17).
//
// Two rules, for POST, PUT, PATCH and DELETE:
//   - Content-Type must be application/json, empty bodies included: a
//     browser sends that cross-origin only after a CORS preflight, which
//     the API never answers, so no page can send it unasked. 415.
//   - A browser's Sec-Fetch-Site must be same-origin or none (typed by the
//     user), and without it an Origin must match the Host (Go's
//     http.CrossOriginProtection). A same-site page on another port is
//     refused too. 403.
//
// Clients that are not browsers (curl, Go) send neither header and pass
// the second rule; they need only say they send JSON.
func refuseCrossSite() mux.MiddlewareFunc {
	origin := http.NewCrossOriginProtection()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				next.ServeHTTP(w, r)
				return
			}
			if err := origin.Check(r); err != nil {
				writeError(w, r, &apiError{Status: http.StatusForbidden,
					Message: "cross-origin request refused: state-changing requests must come from the API's own origin or a non-browser client"})
				return
			}
			if err := requireJSON(r); err != nil {
				writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
