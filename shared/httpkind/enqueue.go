package httpkind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// resolveTimeout bounds the DNS lookup an enqueue check makes.
const resolveTimeout = 2 * time.Second

// EnqueueCheck returns the check the API runs on an http job's payload
// before writing it (catalog.Catalog.Check), with the workers' settings
// (the same SPOOL_HTTP_ALLOWED_HOSTS, SPOOL_HTTP_HEADER_KEY and
// SPOOL_HTTP_SECRET_HEADERS; the webhook secret is not needed):
//   - a destination the allow list refuses (when it is given) is a 422 at enqueue, not a dead
//     job later. The host is resolved as the worker would resolve it; when
//     resolution fails the job is taken (DNS may be back when it runs), and
//     the worker checks the address it actually connects to in any case.
//   - secret header values are sealed (the payload returned is the one to
//     write); without a key, a job with a secret header is a 422.
//
// resolver resolves names (nil: the system's).
func EnqueueCheck(s Settings, resolver *net.Resolver) (func(ctx context.Context, payload []byte) ([]byte, error), error) {
	var list *AllowList
	if s.Enabled() {
		l, err := ParseAllowList(s.AllowedHosts)
		if err != nil {
			return nil, fmt.Errorf("SPOOL_HTTP_ALLOWED_HOSTS: %w", err)
		}
		list = l
		list.resolver = resolver
	}
	sealer, err := NewSealer(s.HeaderKey, s.SecretHeaders)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		var r Request
		if err := json.Unmarshal(payload, &r); err != nil {
			return nil, nil // the schema has refused what does not decode
		}
		u, err := r.target()
		if err != nil {
			return nil, &jobqueue.InvalidError{Field: "payload.url", Reason: err.Error()}
		}
		if err := list.checkURL(ctx, u); err != nil {
			return nil, &jobqueue.InvalidError{Field: "payload.url", Reason: err.Error()}
		}
		return sealPayload(sealer, payload, r)
	}, nil
}

// sealPayload returns payload with r's secret header values sealed, or nil
// when it has none to seal. Only the headers' values change: the rest of
// the payload is kept as the client wrote it.
func sealPayload(sealer *Sealer, payload []byte, r Request) ([]byte, error) {
	needs := false
	for name, v := range r.Headers {
		needs = needs || (sealer.Secret(name) || Sealed(v))
	}
	if !needs {
		return nil, nil
	}
	if err := sealer.SealRequest(&r); err != nil {
		return nil, &jobqueue.InvalidError{Field: "payload.headers", Reason: strings.TrimPrefix(err.Error(), "headers: ")}
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(payload, &doc); err != nil {
		return nil, err
	}
	h, err := marshal(r.Headers)
	if err != nil {
		return nil, err
	}
	doc["headers"] = h
	return marshal(doc)
}

// marshal encodes v without HTML escaping, which would make a payload of
// '<' six times its size.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// checkURL checks the destination of u; a nil list allows any (the
// workers check when they connect).
func (a *AllowList) checkURL(ctx context.Context, u *url.URL) error {
	if a == nil {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return a.checkHost(ctx, normalHost(u.Hostname()), port)
}

// checkHost checks every address host resolves to (or the IP literal).
func (a *AllowList) checkHost(ctx context.Context, host, port string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return a.Check(host, port, ip)
	}
	if !a.named(host, port) && len(a.cidrs) == 0 {
		return &DeniedError{Host: host, Reason: "not in SPOOL_HTTP_ALLOWED_HOSTS"}
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	r := a.resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound && !a.named(host, port) {
			return &DeniedError{Host: host, Reason: "not in SPOOL_HTTP_ALLOWED_HOSTS"}
		}
		return nil
	}
	for _, ip := range addrs {
		if err := a.Check(host, port, ip); err != nil {
			return err
		}
	}
	return nil
}
