package httpkind

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/jobqueue"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("a", MaxURLBytes)
	for _, tc := range []struct {
		name string
		req  Request
		want string // "" valid, else a part of the error
	}{
		{"plain", Request{URL: "https://example.com/hook"}, ""},
		{"full", Request{URL: "http://example.com:8080/x?y=1", Method: "PUT", Headers: map[string]string{"Authorization": SealedPrefix + "AAAA", "X-A": "b"},
			Body: json.RawMessage(`{"a":1}`), Timeout: "10s"}, ""},
		{"base64 body", Request{URL: "https://example.com/", BodyBase64: "AAEC/w=="}, ""},
		{"clear Authorization", Request{URL: "https://example.com/", Headers: map[string]string{"authorization": "Bearer x"}}, "stored only sealed"},
		{"clear Cookie", Request{URL: "https://example.com/", Headers: map[string]string{"Cookie": "a=b"}}, "stored only sealed"},
		{"ftp", Request{URL: "ftp://example.com/"}, "url: must be http or https"},
		{"no scheme", Request{URL: "example.com/x"}, "url: must be http or https"},
		{"credentials", Request{URL: "https://user:pw@example.com/"}, "credentials"},
		{"user only", Request{URL: "https://user@example.com/"}, "credentials"},
		{"too long", Request{URL: long}, "url: 2068 bytes; at most 2048"},
		{"no host", Request{URL: "https:///x"}, "url: has no host"},
		{"CR in value", Request{URL: "https://example.com/", Headers: map[string]string{"X-A": "a\r\nHost: evil"}}, "CR, LF"},
		{"LF in value", Request{URL: "https://example.com/", Headers: map[string]string{"X-A": "a\nb"}}, "CR, LF"},
		{"bad name", Request{URL: "https://example.com/", Headers: map[string]string{"X A": "b"}}, "not a valid header name"},
		{"Host", Request{URL: "https://example.com/", Headers: map[string]string{"host": "other"}}, "hop-by-hop"},
		{"Connection", Request{URL: "https://example.com/", Headers: map[string]string{"Connection": "close"}}, "hop-by-hop"},
		{"Transfer-Encoding", Request{URL: "https://example.com/", Headers: map[string]string{"Transfer-Encoding": "chunked"}}, "hop-by-hop"},
		{"Proxy-Authorization", Request{URL: "https://example.com/", Headers: map[string]string{"Proxy-Authorization": "x"}}, "hop-by-hop"},
		{"TE", Request{URL: "https://example.com/", Headers: map[string]string{"TE": "trailers"}}, "hop-by-hop"},
		{"webhook-signature", Request{URL: "https://example.com/", Headers: map[string]string{"Webhook-Signature": "v1,x"}}, "signing"},
		{"both bodies", Request{URL: "https://example.com/", Body: json.RawMessage(`1`), BodyBase64: "AA=="}, "at most one"},
		{"big body", Request{URL: "https://example.com/", Body: json.RawMessage(`"` + strings.Repeat("a", MaxBodyBytes) + `"`)}, "body: 1048578 bytes"},
		{"big base64 body", Request{URL: "https://example.com/", BodyBase64: strings.Repeat("AAAA", MaxBodyBytes/3+1)}, "body_base64: "},
		{"bad base64", Request{URL: "https://example.com/", BodyBase64: "!!"}, "not standard base64"},
		{"bad timeout", Request{URL: "https://example.com/", Timeout: "soon"}, "timeout: must be"},
		{"long timeout", Request{URL: "https://example.com/", Timeout: "1h"}, "timeout: at most 5m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestAllowList(t *testing.T) {
	t.Parallel()
	a, err := ParseAllowList("api.example.com, hooks.example.com:8443, 10.1.0.0/16, 203.0.113.7, [2001:db8::1]:443")
	if err != nil {
		t.Fatal(err)
	}
	public, metadata := netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("169.254.169.254")
	for _, tc := range []struct {
		host, port string
		ip         netip.Addr
		allowed    bool
	}{
		{"api.example.com", "443", public, true},
		{"API.Example.COM.", "8080", public, true}, // a name without port: any port
		{"api.example.com", "443", netip.MustParseAddr("127.0.0.1"), false},
		{"api.example.com", "443", metadata, false}, // a listed name resolving to the metadata address
		{"api.example.com", "443", netip.MustParseAddr("10.2.0.1"), false},
		{"api.example.com", "443", netip.MustParseAddr("192.168.1.1"), false},
		{"api.example.com", "443", netip.MustParseAddr("::1"), false},
		{"api.example.com", "443", netip.MustParseAddr("::ffff:127.0.0.1"), false},
		{"api.example.com", "443", netip.MustParseAddr("fe80::1"), false},
		{"api.example.com", "443", netip.MustParseAddr("fd00::1"), false},
		{"api.example.com", "443", netip.MustParseAddr("0.0.0.0"), false},
		{"api.example.com", "443", netip.MustParseAddr("100.64.0.1"), false},
		{"hooks.example.com", "8443", public, true},
		{"hooks.example.com", "443", public, false},
		{"other.example.com", "443", public, false},
		{"internal.svc", "80", netip.MustParseAddr("10.1.2.3"), true}, // in the CIDR: allowed whatever the name
		{"10.1.2.3", "80", netip.MustParseAddr("10.1.2.3"), true},
		{"203.0.113.7", "80", netip.MustParseAddr("203.0.113.7"), true},
		{"2001:db8::1", "443", netip.MustParseAddr("2001:db8::1"), true},
		{"2001:db8::1", "80", netip.MustParseAddr("2001:db8::1"), false},
		{"169.254.169.254", "80", metadata, false},
	} {
		err := a.Check(tc.host, tc.port, tc.ip)
		if (err == nil) != tc.allowed {
			t.Errorf("Check(%s, %s, %s) = %v, want allowed %v", tc.host, tc.port, tc.ip, err, tc.allowed)
		}
	}
	for _, bad := range []string{"", " , ", "10.0.0.0/33", "exa mple.com", "example.com:0", "example.com:http", "http://example.com"} {
		if _, err := ParseAllowList(bad); err == nil {
			t.Errorf("ParseAllowList(%q): nil error, want one", bad)
		}
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"Fri, 04 Dec 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Fri, 04 Dec 2026 11:00:00 GMT", 0, true}, // in the past: no floor
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
	} {
		got, ok := retryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	if _, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil { // the specification's example
		t.Fatal(err)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_AAAA"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q): nil error, want one", bad)
		}
	}
}

// The result stays within jobqueue.MaxResultBytes whatever the body.
func TestResultFits(t *testing.T) {
	t.Parallel()
	for name, body := range map[string][]byte{
		"json":    []byte(`{"ok":true}`),
		"text":    []byte("hello"),
		"escapes": []byte(strings.Repeat("\x01", MaxResultBody)),
		"binary":  append([]byte{0xff, 0xfe}, make([]byte, MaxResultBody)...),
	} {
		r := result(&http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"x/y"}}}, body, false)
		b, _ := json.Marshal(r)
		if len(b) > jobqueue.MaxResultBytes {
			t.Errorf("%s: result of %d bytes, over %d", name, len(b), jobqueue.MaxResultBytes)
		}
	}
}
