package httpkind

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// AllowList is the set of destinations http jobs may reach, parsed from
// SPOOL_HTTP_ALLOWED_HOSTS: host names (any port), host:port pairs and
// CIDRs. A destination is allowed when the address actually connected to
// is in one of the CIDRs, or when the URL's host (and port) is listed by
// name and the address is not a special one (loopback, private,
// link-local, unspecified…; see Special): naming a host does not let it
// resolve to 127.0.0.1 or 169.254.169.254.
type AllowList struct {
	hosts    map[string]bool // lower-case host names and IP literals: any port
	hostPort map[string]bool // "host:port"
	cidrs    []netip.Prefix
	resolver *net.Resolver // of the enqueue check's lookups; nil: the system's
}

// ParseAllowList reads a comma-separated list of host, host:port and CIDR
// entries ("api.example.com, hooks.example.com:8443, 10.1.0.0/16").
func ParseAllowList(s string) (*AllowList, error) {
	a := &AllowList{hosts: map[string]bool{}, hostPort: map[string]bool{}}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if strings.Contains(entry, "/") {
			p, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, fmt.Errorf("%q: not a CIDR", entry)
			}
			a.cidrs = append(a.cidrs, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(strings.Trim(entry, "[]")); err == nil {
			a.hosts[ip.Unmap().String()] = true
			continue
		}
		host, port, err := net.SplitHostPort(entry)
		if err != nil {
			host, port = entry, ""
		}
		host = normalHost(host)
		if _, err := netip.ParseAddr(host); err != nil && !validHost(host) {
			return nil, fmt.Errorf("%q: not a host name, host:port or CIDR", entry)
		}
		if port == "" {
			a.hosts[host] = true
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: bad port", entry)
		}
		a.hostPort[net.JoinHostPort(host, port)] = true
	}
	if len(a.hosts)+len(a.hostPort)+len(a.cidrs) == 0 {
		return nil, errors.New("no entries")
	}
	return a, nil
}

// normalHost is a URL host as the allow list compares it: lower case,
// without a trailing dot, an IP in its canonical form.
func normalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// named reports whether host:port is listed by name.
func (a *AllowList) named(host, port string) bool {
	host = normalHost(host)
	return a.hosts[host] || a.hostPort[net.JoinHostPort(host, port)]
}

// inCIDR reports whether ip is in one of the list's CIDRs.
func (a *AllowList) inCIDR(ip netip.Addr) bool {
	for _, p := range a.cidrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Check decides whether a connection to ip, made for a URL whose host and
// port are host and port, is allowed.
func (a *AllowList) Check(host, port string, ip netip.Addr) error {
	ip = ip.Unmap()
	if a.inCIDR(ip) {
		return nil
	}
	if !a.named(host, port) {
		return &DeniedError{Host: host, Addr: ip, Reason: "not in SPOOL_HTTP_ALLOWED_HOSTS"}
	}
	if Special(ip) {
		return &DeniedError{Host: host, Addr: ip, Reason: "a loopback, private, link-local or otherwise special address, allowed only by a CIDR in SPOOL_HTTP_ALLOWED_HOSTS"}
	}
	return nil
}

// DeniedError is a destination refused by the allow list: the job fails
// permanently, nothing is sent.
type DeniedError struct {
	Host   string
	Addr   netip.Addr // the address connected to; invalid when refused before resolution
	Reason string
}

func (e *DeniedError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("destination %s (%s) refused: %s", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("destination %s refused: %s", e.Host, e.Reason)
}

// special are the ranges beyond netip's predicates that must not be
// reached by name: "this network", shared address space (carrier NAT),
// IETF protocol assignments, benchmarking, reserved and broadcast, NAT64
// (it can embed any of the others), and deprecated site-local IPv6.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("fec0::/10"),
}

// Special reports whether ip is an address an http job may reach only
// through an explicit CIDR: loopback, private (RFC 1918, fc00::/7),
// link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
// unspecified, multicast, and the reserved ranges above.
func Special(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range special {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// control returns a net.Dialer Control function that checks each address
// the dialer is about to connect to (after DNS resolution, so a name
// cannot be re-resolved to another address between the check and the
// connection) for a URL of host and port.
func (a *AllowList) control(host, port string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &DeniedError{Host: host, Reason: "unparsable address " + address}
		}
		return a.Check(host, port, ap.Addr())
	}
}
