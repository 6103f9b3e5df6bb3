package main

// Hostile clients against the real binary (issue 17, items 1 and 4): the
// API's memory stays bounded under thousands of unfinished headers, and
// slow or never-reading clients cannot take the in-flight slots, while
// normal requests are served throughout.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

const (
	rwToken = "rw-token-for-the-limits-tests-0123456789"
	roToken = "ro-token-for-the-limits-tests-9876543210"
)

// startAPI runs the built spool-api on a fresh migrated database with the
// two tokens and extra settings, and returns it with its API address.
func startAPI(t *testing.T, extra ...string) (*proctest.Proc, string) {
	t.Helper()
	bin := proctest.Build(t, "github.com/spoolq/spool/services/api")
	db := pgtest.New(t)
	p := proctest.Start(t, bin, env(append([]string{"SPOOL_DATABASE_URL=" + db.URL,
		"SPOOL_API_TOKENS=" + rwToken + ":rw," + roToken + ":ro", "SPOOL_OPEN_KINDS=*",
		"SPOOL_HTTP_ADDR=127.0.0.1:0", "SPOOL_ADMIN_ADDR=127.0.0.1:0",
		"GOMEMLIMIT=230MiB"}, extra...))) // as the chart sets it for the API's 256Mi
	var addr string
	proctest.Eventually(t, 15*time.Second, "the api listening line", func() bool {
		if code, exited := p.Wait(0); exited {
			t.Fatalf("spool-api exited with %d:\n%s", code, p.Output())
		}
		if l := p.JSONLines("api listening"); len(l) > 0 {
			addr = fmt.Sprint(l[0]["addr"])
		}
		return addr != ""
	})
	return p, addr
}

// raiseFileLimit lifts the soft open-file limit to the hard one (the API,
// started afterwards, inherits it) and returns how many descriptors the
// test may use.
func raiseFileLimit(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// memory reads a process's peak and current resident set, in KiB.
func memory(t *testing.T, pid int) (hwm, rss int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmHWM:" || f[0] == "VmRSS:") {
			n, _ := strconv.Atoi(f[1])
			if f[0] == "VmHWM:" {
				hwm = n
			} else {
				rss = n
			}
		}
	}
	return hwm, rss
}

// prober sends normal requests, each on a new connection, until stopped,
// and records their status codes and latencies.
type prober struct {
	mu        sync.Mutex
	codes     map[int]int
	latencies []time.Duration
	errs      []string
	stop      chan struct{}
	done      sync.WaitGroup
}

func startProber(addr string, every time.Duration, newReq func() *http.Request) *prober {
	p := &prober{codes: map[int]int{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	p.done.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			res, err := client.Do(newReq())
			elapsed := time.Since(start)
			p.mu.Lock()
			if err != nil {
				p.errs = append(p.errs, err.Error())
			} else {
				p.codes[res.StatusCode]++
				p.latencies = append(p.latencies, elapsed)
				res.Body.Close()
			}
			p.mu.Unlock()
		}
	})
	return p
}

// finish stops the prober and returns its codes, errors and the p50, p99
// and largest latency.
func (p *prober) finish() (codes map[int]int, errs []string, p50, p99, maxL time.Duration) {
	close(p.stop)
	p.done.Wait()
	l := slices.Clone(p.latencies)
	slices.Sort(l)
	if len(l) > 0 {
		p50, p99, maxL = l[len(l)/2], l[(len(l)*99)/100], l[len(l)-1]
	}
	return p.codes, p.errs, p50, p99, maxL
}

func getReq(addr, path, token string) func() *http.Request {
	return func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return req
	}
}

// TestUnfinishedHeadersCannotExhaustMemory: attack 1 of issue 17. Clients
// without a token keep 3,000 connections open, each with an unfinished
// header (60 KiB, the issue's, then just under the header limit), for
// longer than the header timeout. The API's peak RSS stays well below the
// chart's 256 MiB limit, and normal requests on new connections are served
// meanwhile.
func TestUnfinishedHeadersCannotExhaustMemory(t *testing.T) {
	t.Parallel()
	attackers := 3000
	if fds := raiseFileLimit(t); fds < uint64(attackers)+500 {
		attackers = int(fds) - 500
		t.Logf("open-file limit %d: %d attacking connections", fds, attackers)
	}
	for _, size := range []int{60 << 10, 15 << 10} {
		p, addr := startAPI(t)
		base, _ := memory(t, p.PID())
		probe := startProber(addr, 20*time.Millisecond, getReq(addr, "/v1/stats", roToken))
		var opened, refused atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		header := "GET /v1/stats HTTP/1.1\r\nHost: spool\r\nX-Pad: " + strings.Repeat("a", size)
		// 50 goroutines each keep their share of connections open,
		// opening a new one whenever the API closes one.
		for g := range 50 {
			wg.Go(func() {
				var conns []net.Conn
				defer func() {
					for _, c := range conns {
						c.Close()
					}
				}()
				for i := g; i < attackers; i += 50 {
					c, err := net.DialTimeout("tcp", addr, 2*time.Second)
					if err != nil {
						refused.Add(1)
						continue
					}
					opened.Add(1)
					_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
					_, _ = c.Write([]byte(header))
					conns = append(conns, c)
				}
				<-stop
			})
		}
		time.Sleep(6 * time.Second) // past the 5 s header timeout
		close(stop)
		wg.Wait()
		codes, errs, p50, p99, maxL := probe.finish()
		hwm, rss := memory(t, p.PID())
		t.Logf("header %d KiB: %d connections opened (%d dials failed); API RSS %d MiB at start, peak %d MiB, now %d MiB; "+
			"normal requests %v, errors %d, latency p50 %s p99 %s max %s",
			size>>10, opened.Load(), refused.Load(), base>>10, hwm>>10, rss>>10, codes, len(errs), p50, p99, maxL)
		if hwm > 128<<10 {
			t.Errorf("header %d KiB: API peak RSS %d MiB, want below 128 MiB (the chart's limit is 256 MiB)", size>>10, hwm>>10)
		}
		if share := served(codes, errs, http.StatusOK); share < minServed {
			t.Errorf("header %d KiB: normal requests answered %v, errors %v: %.0f%% served, want at least %.0f%%",
				size>>10, codes, errs[:min(len(errs), 5)], 100*share, 100*minServed)
		}
		if p99 > time.Second {
			t.Errorf("header %d KiB: normal requests' p99 latency %s, want below 1 s", size>>10, p99)
		}
	}
}

// slowBody sends a POST with a rw token whose 1,000-byte body arrives one
// byte every 200 ms, until stop.
func slowBody(addr string, stop <-chan struct{}) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/jobs HTTP/1.1\r\nHost: spool\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", rwToken)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}
}

// neverRead asks with a ro token for a large page of jobs and never reads
// the answer, from a socket with a small receive buffer, until stop.
func neverRead(addr string, stop <-chan struct{}) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/jobs?include=payload&limit=500 HTTP/1.1\r\nHost: spool\r\nAuthorization: Bearer %s\r\n\r\n", roToken)
	<-stop
}

// TestSlowClientsCannotHoldSlots: attack 4 of issue 17. With 4 in-flight
// slots, 20 connections sending a body slowly and 22 never reading a large
// answer do not make normal requests wait or answer 429.
func TestSlowClientsCannotHoldSlots(t *testing.T) {
	t.Parallel()
	raiseFileLimit(t)
	p, addr := startAPI(t, "SPOOL_MAX_INFLIGHT=4", "SPOOL_DB_MAX_CONNS=4")

	// 12 jobs of 1 MiB: a page including payloads is about 12 MiB, far more
	// than the sockets between the API and a client that never reads hold.
	client := &http.Client{Timeout: 10 * time.Second}
	pad := strings.Repeat("x", 1<<20-100)
	for i := range 12 {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/jobs",
			strings.NewReader(fmt.Sprintf(`{"type":"big","delay":"8000h","payload":{"i":%d,"pad":%q}}`, i, pad)))
		req.Header.Set("Authorization", "Bearer "+rwToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("enqueue a 1 MiB job: %d, want 201", res.StatusCode)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { slowBody(addr, stop) })
	}
	for range 22 {
		wg.Go(func() { neverRead(addr, stop) })
	}
	time.Sleep(time.Second) // every attacker has sent its request
	reads := startProber(addr, 50*time.Millisecond, getReq(addr, "/v1/stats", roToken))
	writes := startProber(addr, 100*time.Millisecond, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/jobs", strings.NewReader(`{"type":"small"}`))
		req.Header.Set("Authorization", "Bearer "+rwToken)
		req.Header.Set("Content-Type", "application/json")
		return req
	})
	time.Sleep(6 * time.Second)
	rcodes, rerrs, rp50, rp99, _ := reads.finish()
	wcodes, werrs, wp50, wp99, _ := writes.finish()
	close(stop)
	wg.Wait()
	hwm, _ := memory(t, p.PID())
	t.Logf("under 20 slow bodies and 22 never-reading clients: GET /v1/stats %v (errors %d, p50 %s, p99 %s); "+
		"POST /v1/jobs %v (errors %d, p50 %s, p99 %s); API peak RSS %d MiB",
		rcodes, len(rerrs), rp50, rp99, wcodes, len(werrs), wp50, wp99, hwm>>10)
	for _, c := range []struct {
		what  string
		codes map[int]int
		errs  []string
		want  int
	}{{"GET /v1/stats", rcodes, rerrs, http.StatusOK}, {"POST /v1/jobs", wcodes, werrs, http.StatusCreated}} {
		if share := served(c.codes, c.errs, c.want); share < minServed {
			t.Errorf("%s under attack: %v, errors %v: %.0f%% answered %d, want at least %.0f%%",
				c.what, c.codes, c.errs[:min(len(c.errs), 5)], 100*share, c.want, 100*minServed)
		}
	}
	if rp99 > time.Second || wp99 > time.Second {
		t.Errorf("p99 latency under attack: GET %s, POST %s; want below 1 s", rp99, wp99)
	}
}

// minServed is the share of normal requests that must succeed under an
// attack. Not all of them: on a loaded 2-core machine (make test runs
// packages side by side, 93% and 86% were served once in a fresh clone's
// make test while other builds ran) a normal connection can be the oldest
// waiting one and evicted, or meet every slot taken by the attackers'
// answers being rendered, which is their own work. Before the limits,
// slow clients left none served (attack 4), and unfinished headers took
// the API past 540 MiB (attack 1, the memory check).
const minServed = 0.8

// served is the share of requests answered want.
func served(codes map[int]int, errs []string, want int) float64 {
	total := len(errs)
	for _, n := range codes {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(codes[want]) / float64(total)
}
