// Package apiext lets an application add routes to the stock API (the
// order demo adds /v1/orders and /v1/products). Added routes run behind
// the API's own middleware — authentication, the in-flight limit, the
// request deadline, logging and metrics — decode bodies with its strict
// decoder, and answer errors in its one error shape.
package apiext

import (
	"fmt"
	"net/http"
)

// Route is one added route.
type Route struct {
	Method string
	Path   string // a gorilla/mux template under /v1, such as /v1/orders/{id}; methods but GET and HEAD need a rw token
	// Handle answers: a status and a value the API encodes as JSON, or an
	// error. An *Error is the client's (its status and message are shown);
	// anything else is the API's: 503 if the database is unavailable, else
	// 500.
	Handle func(r *http.Request, req Request) (status int, body any, err error)
}

// Request is what a route gets besides the *http.Request.
type Request struct {
	Vars      map[string]string // the path's variables
	RequestID string
	// Decode reads the JSON body into v strictly (unknown fields,
	// duplicate keys, trailing data and oversized bodies are refused with
	// the API's 4xx).
	Decode func(v any) error
}

// Error is a client's mistake, answered with Status.
type Error struct {
	Status  int
	Message string
	Field   string // the input at fault, if one is
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}
