// Package httpkind is the http kind: a job that makes one HTTP request to
// a team's own service, signed by the Standard Webhooks specification
// (https://www.standardwebhooks.com), to destinations an allow list
// permits. The stock worker runs it when SPOOL_HTTP_ALLOWED_HOSTS is set.
//
// Outcomes: a 2xx completes the job with the status, a few response
// headers and up to 64 KiB of the body as its result; 408, 425, 429, 5xx,
// connection and TLS errors and timeouts retry with backoff (429 and 503
// no earlier than their Retry-After, capped by the job's backoff max);
// any other status, a redirect (followed only when the job asks, each hop
// checked like the first request) and a refused destination fail the job
// at once. Secret header values (Authorization, Cookie, and names
// configured) are stored only sealed (Sealer) and opened just before
// sending. With Deps.Tokens it honours the cluster-wide host limits
// (scope "host"): a token of the destination host's rate limit is taken
// just before sending, and a job that gets none snoozes until one should
// be there, spending no attempt.
package httpkind

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/jobqueue"
)

// Settings are the http kind's SPOOL_* variables.
type Settings struct {
	AllowedHosts  string `envconfig:"HTTP_ALLOWED_HOSTS" desc:"destinations http jobs may reach, comma-separated: host (any port), host:port, CIDR; loopback, private and link-local addresses only through a CIDR; empty: the http kind is off"`
	WebhookSecret string `envconfig:"WEBHOOK_SECRET" desc:"key that signs http jobs' requests (Standard Webhooks), whsec_<base64> of 24 to 64 bytes; empty: requests are not signed"`
	HeaderKey     string `envconfig:"HTTP_HEADER_KEY" desc:"key that seals http jobs' secret header values (Authorization, Cookie, SPOOL_HTTP_SECRET_HEADERS) at enqueue and opens them to send, on the API and every worker: standard base64 of 32 bytes; several comma-separated to rotate (the first seals); empty: jobs cannot carry secret headers"`
	SecretHeaders string `envconfig:"HTTP_SECRET_HEADERS" desc:"header names, comma-separated, whose values are sealed like Authorization and Cookie (e.g. X-Api-Key); the same on the API and the workers"`
}

// Enabled reports whether the kind is to run: its allow list is not empty.
func (s Settings) Enabled() bool { return strings.TrimSpace(s.AllowedHosts) != "" }

// Check checks the settings (when the kind is enabled).
func (s Settings) Check() error {
	_, err := s.sender()
	return err
}

func (s Settings) sender() (*sender, error) {
	if !s.Enabled() {
		return nil, nil
	}
	allow, err := ParseAllowList(s.AllowedHosts)
	if err != nil {
		return nil, fmt.Errorf("configuration: SPOOL_HTTP_ALLOWED_HOSTS: %w", err)
	}
	sealer, err := NewSealer(s.HeaderKey, s.SecretHeaders)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	snd := &sender{allow: allow, sealer: sealer, now: time.Now}
	if s.WebhookSecret != "" {
		if snd.secret, err = ParseSecret(s.WebhookSecret); err != nil {
			return nil, fmt.Errorf("configuration: SPOOL_WEBHOOK_SECRET: %w", err)
		}
	}
	snd.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // a proxy would be the address connected to, not the destination
			DialContext:         snd.dial,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: snd.redirect,
	}
	return snd, nil
}

// Add registers the http kind in kinds when s enables it, without host
// limits (AddLimited honours them).
func Add(kinds *jobqueue.Kinds, s Settings) error { return AddWith(kinds, s, Deps{}) }

// Tokens takes rate tokens of cluster-wide limits; *jobqueue.Client is one.
type Tokens interface {
	TakeToken(ctx context.Context, scope, name string) (time.Duration, error)
}

// AddLimited registers the http kind in kinds when s enables it, honouring
// the cluster-wide host limits through tokens; see Deps.
func AddLimited(kinds *jobqueue.Kinds, s Settings, tokens Tokens) error {
	return AddWith(kinds, s, Deps{Tokens: tokens})
}

// Deps are what the http kind may use of its binary.
type Deps struct {
	// Tokens, if set, makes the kind honour the cluster-wide host limits
	// (PUT /v1/limits/host/{host}): just before sending, a job takes a
	// token of its destination host's rate limit; when there is none it
	// snoozes until one should be there, spending no attempt.
	Tokens Tokens
	// Registerer, if set, gets the kind's metrics: requests by
	// destination host and status class, and their durations.
	Registerer prometheus.Registerer
	// Resolver resolves destination names (nil: the system's).
	Resolver *net.Resolver
}

// AddWith registers the http kind in kinds when s enables it.
func AddWith(kinds *jobqueue.Kinds, s Settings, d Deps) error {
	snd, err := s.sender()
	if err != nil || snd == nil {
		return err
	}
	snd.tokens, snd.resolver = d.Tokens, d.Resolver
	if snd.metrics, err = newMetrics(d.Registerer); err != nil {
		return err
	}
	jobqueue.AddKind(kinds, snd.handle, &jobqueue.KindOpts{
		Description: "sends one HTTP request (Standard Webhooks signature) to an allowed destination; 2xx completes with the response as result"})
	return nil
}

// Bounds on what is kept of a response.
const (
	MaxResultBody = 60 << 10 // of the body in the result (the result as a whole stays within jobqueue.MaxResultBytes)
	MaxExcerpt    = 1 << 10  // of the body in a failure's message
)

// resultHeaders are the response headers kept in the result.
var resultHeaders = []string{"Content-Type", "Location", "ETag", "Last-Modified", "Request-Id", "X-Request-Id"}

// Result is an http job's result: the response of a 2xx.
type Result struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	// One of: Body when the body is JSON, BodyText when it is other
	// UTF-8 text, BodyBase64 otherwise.
	Body          json.RawMessage `json:"body,omitempty"`
	BodyText      string          `json:"body_text,omitempty"`
	BodyBase64    string          `json:"body_base64,omitempty"`
	BodyTruncated bool            `json:"body_truncated,omitempty"`
}

type sender struct {
	allow    *AllowList
	secret   Secret // nil: unsigned
	sealer   *Sealer
	client   *http.Client
	now      func() time.Time
	tokens   Tokens // nil: host limits are not honoured
	metrics  *metrics
	resolver *net.Resolver // nil: the system's
}

// dial connects to addr (the URL's host:port), checking every address the
// dialer tries in its Control hook, after resolution.
func (s *sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: s.resolver, Control: s.allow.control(host, port)}
	return d.DialContext(ctx, network, addr)
}

func (s *sender) handle(ctx context.Context, job *jobqueue.Job, r Request) error {
	u, _ := r.target() // Validate has passed
	timeout, _ := r.timeout()
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, followKey{}, r.FollowRedirects), timeout)
	defer cancel()
	req, body, err := s.request(ctx, r, u)
	if err != nil {
		return jobqueue.Permanent(err)
	}
	host := normalHost(u.Hostname())
	if s.tokens != nil {
		// Last before sending, so a token is spent only on a request
		// that goes out (or fails to connect).
		wait, err := s.tokens.TakeToken(ctx, jobqueue.ScopeHost, host)
		if err != nil {
			return fmt.Errorf("host limit of %s: %w", host, err)
		}
		if wait > 0 {
			// Jobs kept waiting for one host come back spread over a
			// little more than the wait, not all at the same instant.
			return jobqueue.Snooze(wait + rand.N(wait/2+time.Millisecond))
		}
	}
	s.sign(req, job.ID, body)
	jobqueue.InjectTrace(ctx, req.Header) // the receiver's spans join the job's trace
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.metrics.observe(host, errorClass(err), time.Since(start))
		return sendError(req, u, err)
	}
	defer resp.Body.Close()
	// A read error after the status is not retried: a 2xx means the
	// receiver took the request, and sending it again would repeat it.
	got, err := io.ReadAll(io.LimitReader(resp.Body, MaxResultBody+1))
	s.metrics.observe(host, statusClass(resp.StatusCode), time.Since(start))
	return s.outcome(ctx, resp, got, err != nil)
}

// request builds the request r describes, its secret headers opened, and
// returns it with its body.
func (s *sender) request(ctx context.Context, r Request, u *url.URL) (*http.Request, []byte, error) {
	body, _ := r.body()
	req, err := http.NewRequestWithContext(ctx, r.method(), u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	if body == nil {
		req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
	}
	headers, err := s.sealer.openHeaders(r, u.Hostname())
	if err != nil {
		return nil, nil, err
	}
	for name, value := range headers {
		req.Header.Set(name, value)
	}
	if body != nil && r.BodyBase64 == "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Spool-http-kind")
	}
	return req, body, nil
}

// sign sets the Standard Webhooks headers (the signature only with a
// secret).
func (s *sender) sign(req *http.Request, jobID int64, body []byte) {
	id, ts := MessageID(jobID), s.now().Unix()
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if s.secret != nil {
		req.Header.Set("webhook-signature", s.secret.Sign(id, ts, body))
	}
}

// sendError is the job's error for a request that got no response: a
// refused destination or redirect fails the job, the rest is retried.
func sendError(req *http.Request, u *url.URL, err error) error {
	var denied *DeniedError
	var redirect *RedirectError
	switch {
	case errors.As(err, &denied):
		return jobqueue.Permanent(denied)
	case errors.As(err, &redirect):
		return jobqueue.Permanent(redirect)
	}
	return fmt.Errorf("%s %s: %w", req.Method, u.Redacted(), errors.Unwrap(err)) // url.Error repeats the URL
}

// outcome classifies a response; body is at most MaxResultBody+1 bytes,
// cut short when the body could not be read to its end.
func (s *sender) outcome(ctx context.Context, resp *http.Response, body []byte, cut bool) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return jobqueue.SetResult(ctx, result(resp, body, cut))
	case code >= 300 && code < 400:
		return jobqueue.Permanent(fmt.Errorf("HTTP %d: redirect to %q not followed (a job opts in with follow_redirects)", code, resp.Header.Get("Location")))
	}
	err := fmt.Errorf("HTTP %d: %s", code, excerpt(body))
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), s.now()); ok {
			return jobqueue.RetryAfter(d, err)
		}
		return err
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code >= 500:
		return err
	}
	return jobqueue.Permanent(err)
}

// retryAfter reads a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(365*24*3600))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func result(resp *http.Response, body []byte, cut bool) Result {
	r := Result{Status: resp.StatusCode, BodyTruncated: cut}
	for _, h := range resultHeaders {
		if v := resp.Header.Get(h); v != "" {
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers[h] = truncate(v, 1024)
		}
	}
	if len(body) > MaxResultBody {
		body, r.BodyTruncated = body[:MaxResultBody], true
	}
	// The result must fit jobqueue.MaxResultBytes once encoded: text with
	// many escaped characters grows, so halve it until it fits.
	for {
		setBody(&r, body)
		b, _ := json.Marshal(r)
		if len(b) <= jobqueue.MaxResultBytes {
			return r
		}
		body, r.BodyTruncated = body[:len(body)/2], true
	}
}

func setBody(r *Result, body []byte) {
	r.Body, r.BodyText, r.BodyBase64 = nil, "", ""
	switch {
	case len(body) == 0:
	case !r.BodyTruncated && json.Valid(body):
		var buf bytes.Buffer
		if json.Compact(&buf, body) == nil {
			r.Body = buf.Bytes()
		}
	case utf8.Valid(body):
		r.BodyText = string(body)
	default:
		r.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
}

// excerpt is the start of a failed response's body, for the error
// history.
func excerpt(body []byte) string {
	if len(body) == 0 {
		return "(empty body)"
	}
	s := truncate(string(body), MaxExcerpt)
	if !utf8.ValidString(s) {
		return fmt.Sprintf("(%d bytes of binary body)", len(body))
	}
	return strconv.Quote(s)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n] + "…"
}
