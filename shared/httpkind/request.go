package httpkind

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Bounds on a request.
const (
	MaxURLBytes    = 2 << 10 // 2 KiB
	MaxBodyBytes   = 1 << 20 // 1 MiB, after base64 decoding
	MaxHeaders     = 64
	MaxHeaderBytes = 16 << 10 // names and values together
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = 5 * time.Minute
)

// Request is the payload of an http job: one request to url.
type Request struct {
	URL     string            `json:"url" jsonschema:"maxLength=2048"`
	Method  string            `json:"method,omitempty" jsonschema:"enum=GET,enum=HEAD,enum=POST,enum=PUT,enum=PATCH,enum=DELETE,enum=OPTIONS"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is sent as its JSON text (Content-Type application/json unless
	// the headers say otherwise); BodyBase64 is sent as its bytes. At
	// most one of them.
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 string          `json:"body_base64,omitempty" jsonschema:"contentEncoding=base64"`
	Timeout    string          `json:"timeout,omitempty"`
	// FollowRedirects follows up to MaxRedirects redirects, each checked
	// against the allow list like the first request; without it a 3xx
	// fails the job.
	FollowRedirects bool `json:"follow_redirects,omitempty"`
}

// Kind is "http".
func (Request) Kind() string { return "http" }

// Policy gives an http job time for the longest request it may ask for.
func (Request) Policy() jobqueue.Policy {
	return jobqueue.Policy{Timeout: MaxTimeout + 30*time.Second}
}

// hopByHop are header names that describe one connection, not the
// request, or that the client sets itself.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "te": true, "trailer": true, "transfer-encoding": true,
	"upgrade": true, "host": true, "content-length": true,
}

// signing are the headers Spool sets when it signs.
var signing = map[string]bool{"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true}

// Validate checks what the JSON types cannot.
func (r Request) Validate() error {
	var errs []error
	if _, err := r.target(); err != nil {
		errs = append(errs, err)
	}
	if err := checkHeaders(r.Headers); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.body(); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.timeout(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// target parses and checks the URL.
func (r Request) target() (*url.URL, error) {
	if len(r.URL) > MaxURLBytes {
		return nil, fmt.Errorf("url: %d bytes; at most %d", len(r.URL), MaxURLBytes)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, errors.New("url: not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("url: must be http or https")
	case u.User != nil:
		return nil, errors.New("url: must not carry credentials (put them in a header)")
	case u.Hostname() == "":
		return nil, errors.New("url: has no host")
	case strings.ContainsAny(r.URL, " \r\n\t"):
		return nil, errors.New("url: must not contain spaces or control characters")
	}
	return u, nil
}

func (r Request) method() string {
	if r.Method == "" {
		return "POST"
	}
	return r.Method
}

func checkHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("headers: %d; at most %d", len(h), MaxHeaders)
	}
	size := 0
	for name, value := range h {
		size += len(name) + len(value)
		lower := strings.ToLower(name)
		switch {
		case !validName(name):
			return fmt.Errorf("headers: %q is not a valid header name", name)
		case hopByHop[lower] || strings.HasPrefix(lower, "proxy-"):
			return fmt.Errorf("headers: %s is a hop-by-hop header; the client sets it", name)
		case signing[lower]:
			return fmt.Errorf("headers: %s is set by Spool's signing", name)
		case strings.ContainsAny(value, "\r\n\x00"):
			return fmt.Errorf("headers: the value of %s contains CR, LF or NUL", name)
		case slices.Contains(alwaysSecret, lower) && !Sealed(value):
			return fmt.Errorf("headers: %s is stored only sealed (the API seals it with SPOOL_HTTP_HEADER_KEY; a Go client calls Sealer.SealRequest)", name)
		}
	}
	if size > MaxHeaderBytes {
		return fmt.Errorf("headers: %d bytes; at most %d", size, MaxHeaderBytes)
	}
	return nil
}

// validName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// body returns the bytes to send (nil for none).
func (r Request) body() ([]byte, error) {
	hasJSON := len(r.Body) > 0 && string(r.Body) != "null"
	switch {
	case hasJSON && r.BodyBase64 != "":
		return nil, errors.New("body, body_base64: give at most one")
	case hasJSON:
		if len(r.Body) > MaxBodyBytes {
			return nil, fmt.Errorf("body: %d bytes; at most %d", len(r.Body), MaxBodyBytes)
		}
		return r.Body, nil
	case r.BodyBase64 != "":
		if base64.StdEncoding.DecodedLen(len(r.BodyBase64)) > MaxBodyBytes+3 {
			return nil, fmt.Errorf("body_base64: more than %d bytes", MaxBodyBytes)
		}
		b, err := base64.StdEncoding.DecodeString(r.BodyBase64)
		if err != nil {
			return nil, errors.New("body_base64: not standard base64")
		}
		if len(b) > MaxBodyBytes {
			return nil, fmt.Errorf("body_base64: %d bytes; at most %d", len(b), MaxBodyBytes)
		}
		return b, nil
	}
	return nil, nil
}

func (r Request) timeout() (time.Duration, error) {
	if r.Timeout == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(r.Timeout)
	if err != nil || d <= 0 {
		return 0, errors.New("timeout: must be a positive duration such as 10s")
	}
	if d > MaxTimeout {
		return 0, fmt.Errorf("timeout: at most %s", MaxTimeout)
	}
	return d, nil
}
