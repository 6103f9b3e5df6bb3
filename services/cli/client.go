package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// maxAnswerBytes bounds what the CLI reads of one answer: the API's own
// bound (SPOOL_MAX_RESPONSE_BYTES, 16 MiB) with room for the small fields.
const maxAnswerBytes = 64 << 20

// client sends requests to the API.
type client struct {
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
}

// client returns the API client of the resolved settings.
func (a *app) client() (*client, error) {
	s, err := a.settings()
	if err != nil {
		return nil, err
	}
	base, err := baseURL(s.APIURL)
	if err != nil {
		return nil, err
	}
	return &client{base: base, token: s.Token, http: &http.Client{}, timeout: a.timeout}, nil
}

// do sends one request and returns the body of a 2xx answer. body is nil
// (an empty body) or a value to encode; POST, PUT and DELETE always carry
// Content-Type: application/json, as the API requires it of every write.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) (json.RawMessage, error) {
	var data []byte
	switch b := body.(type) {
	case nil:
	case json.RawMessage:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			return nil, &failure{err: fmt.Errorf("encode request: %w", err)}
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(data))
	if err != nil {
		return nil, &failure{err: err}
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "spool-cli/"+version())
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), context.Canceled) {
			return nil, &failure{err: errors.New("interrupted")}
		}
		// The URL error names the URL, which never holds the token.
		return nil, &unreachableError{what: "the API at " + c.base.Redacted(), err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, &unreachableError{what: "the API at " + c.base.Redacted(), err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(answer) > maxAnswerBytes {
		return nil, &failure{err: fmt.Errorf("the answer is larger than %d MiB", maxAnswerBytes>>20)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseAPIError(resp, answer)
	}
	if !json.Valid(answer) {
		return nil, &failure{err: fmt.Errorf("%s %s: the answer is not JSON (is %s Spool's API?)", method, path, c.base.Redacted())}
	}
	return answer, nil
}

// get is do for a GET.
func (c *client) get(ctx context.Context, path string, query url.Values) (json.RawMessage, error) {
	return c.do(ctx, http.MethodGet, path, query, nil)
}

// unwrapURLError drops net/url's "Get "...": " prefix, whose URL the
// message names already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseAPIError reads an error answer in either shape the API has used:
// {"error", "field", "index", "status": <job status>, "known_types",
// "request_id"}, and RFC 9457 problem details (application/problem+json)
// with "title", "status": <HTTP code>, "detail" and "job_status" besides
// those. Anything else (a proxy's HTML page) keeps its HTTP status.
func parseAPIError(resp *http.Response, body []byte) *apiError {
	e := &apiError{HTTPStatus: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	if ra := resp.Header.Get("Retry-After"); ra != "" && len(ra) <= 4 && strings.Trim(ra, "0123456789") == "" {
		e.RetryAfter = ra
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) == nil {
		str := func(key string) string {
			var s string
			if v, ok := raw[key]; ok && json.Unmarshal(v, &s) == nil {
				return s
			}
			return ""
		}
		e.Message = firstOf(str("detail"), str("error"), str("title"))
		e.Field = str("field")
		e.JobStatus = firstOf(str("job_status"), str("status")) // "status" is a string only in the old shape
		if id := str("request_id"); id != "" {
			e.RequestID = id
		}
		var i int
		if v, ok := raw["index"]; ok && json.Unmarshal(v, &i) == nil {
			e.Index = &i
		}
		if v, ok := raw["known_types"]; ok {
			_ = json.Unmarshal(v, &e.KnownTypes)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
		if text := strings.TrimSpace(string(body)); text != "" && utf8.ValidString(text) && !strings.HasPrefix(text, "<") {
			e.Message = clip(text, 200)
		}
	}
	return e
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
