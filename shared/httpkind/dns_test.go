package httpkind_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobqueue/jobqueuetest"
	"github.com/spoolq/spool/shared/pgtest"
)

// names is the zone the test's DNS server answers.
var names = map[string]string{
	"metadata.spool.test.": "169.254.169.254",
	"loop.spool.test.":     "127.0.0.1",
}

// startDNS runs a real DNS server (miekg/dns) on a loopback UDP port and
// returns a resolver that asks only it.
func startDNS(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if ip, ok := names[strings.ToLower(question.Name)]; ok && question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
			} else if !ok {
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// Names listed in the allow list that resolve to the metadata address or
// to loopback are refused at enqueue and at connect time, after a real
// DNS lookup; with the receiver's CIDR also listed, the loopback name is
// reached (so the lookups did resolve).
func TestNamesResolvingToSpecialAddressesAreRefused(t *testing.T) {
	t.Parallel()
	resolver := startDNS(t)
	rc := newReceiver(t, map[string]func(int, http.ResponseWriter){"/x": answer(http.StatusOK, nil, "")})
	port := rc.srv.URL[strings.LastIndex(rc.srv.URL, ":")+1:]
	const allowed = "metadata.spool.test, loop.spool.test"
	metadata, loop := "http://metadata.spool.test/latest/meta-data/", "http://loop.spool.test:"+port+"/x"

	check, err := httpkind.EnqueueCheck(httpkind.Settings{AllowedHosts: allowed}, resolver)
	if err != nil {
		t.Fatal(err)
	}
	for url, addr := range map[string]string{metadata: "169.254.169.254", loop: "127.0.0.1"} {
		_, err := check(context.Background(), []byte(`{"url":"`+url+`"}`))
		if err == nil || !strings.Contains(err.Error(), "("+addr+") refused: a loopback, private, link-local") {
			t.Errorf("enqueue %s: %v; want refused as %s", url, err, addr)
		}
	}

	start := func(allowed string) *bundle {
		db := pgtest.New(t)
		kinds := jobqueue.NewKinds()
		if err := httpkind.AddWith(kinds, httpkind.Settings{AllowedHosts: allowed}, httpkind.Deps{Resolver: resolver}); err != nil {
			t.Fatal(err)
		}
		client, err := jobqueue.NewClient(db.Pool, &jobqueue.ClientOpts{Kinds: kinds})
		if err != nil {
			t.Fatal(err)
		}
		jobqueuetest.StartWorker(t, client, kinds, jobqueue.WorkerConfig{ID: "dns-" + allowed,
			Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 4}}, PollInterval: 50 * time.Millisecond})
		return &bundle{client: client}
	}
	b := start(allowed)
	for url, addr := range map[string]string{metadata: "169.254.169.254", loop: "127.0.0.1"} {
		j := b.final(t, b.enqueue(t, httpkind.Request{URL: url}, 3))
		if j.Status != jobqueue.StatusDead || j.Attempts != 1 || !strings.Contains(lastError(j), "("+addr+") refused") {
			t.Errorf("%s: %s after %d attempts (%s); want dead at once, %s refused", url, j.Status, j.Attempts, lastError(j), addr)
		}
	}
	if n := len(rc.requests("")); n != 0 {
		t.Fatalf("the receiver got %d requests, want none", n)
	}
	// The same name with the receiver's address allowed by CIDR: reached.
	b = start(allowed + ", 127.0.0.1/32")
	if j := b.final(t, b.enqueue(t, httpkind.Request{URL: loop}, 1)); j.Status != jobqueue.StatusCompleted {
		t.Fatalf("%s with 127.0.0.1/32 allowed: %s (%s)", loop, j.Status, lastError(j))
	}
	if n := len(rc.requests("/x")); n != 1 {
		t.Fatalf("the receiver got %d requests, want 1", n)
	}
}
