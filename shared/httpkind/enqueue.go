package httpkind

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

// resolveTimeout bounds the DNS lookup an enqueue check makes.
const resolveTimeout = 2 * time.Second

// EnqueueCheck returns the check the API runs on an http job's payload
// before writing it (catalog.Catalog.Check), with the workers' allow list
// (SPOOL_HTTP_ALLOWED_HOSTS, the same value): a destination the list
// refuses is a 422 at enqueue, not a dead job later. The host is resolved
// as the worker would resolve it; when resolution fails the job is taken
// (DNS may be back when it runs), and the worker checks the address it
// actually connects to in any case.
func EnqueueCheck(allowed string) (func(ctx context.Context, payload []byte) error, error) {
	list, err := ParseAllowList(allowed)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, payload []byte) error {
		var r Request
		if err := json.Unmarshal(payload, &r); err != nil {
			return nil // the schema has refused what does not decode
		}
		u, err := r.target()
		if err != nil {
			return &jobqueue.InvalidError{Field: "payload.url", Reason: err.Error()}
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		if err := list.checkHost(ctx, normalHost(u.Hostname()), port); err != nil {
			return &jobqueue.InvalidError{Field: "payload.url", Reason: err.Error()}
		}
		return nil
	}, nil
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
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
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
