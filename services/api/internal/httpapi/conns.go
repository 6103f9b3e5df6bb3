package httpapi

import (
	"bytes"
	"container/list"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connMetrics are the listener's series; a nil *connMetrics records nothing.
type connMetrics struct {
	open   prometheus.Gauge
	closed *prometheus.CounterVec
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	if reg == nil {
		return nil
	}
	m := &connMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spool_http_connections",
			Help: "Connections open on the API listener, counted against SPOOL_MAX_CONNS.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_http_connections_closed_total",
			Help: "Connections the API closed because of a limit: evicted (waiting for a request at the connection limit), refused (every connection busy at the limit), header_bytes (431).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{"evicted", "refused", "header_bytes"} {
		m.closed.WithLabelValues(reason) // exported from the start, at 0
	}
	reg.MustRegister(m.open, m.closed)
	return m
}

func (m *connMetrics) count(reason string) {
	if m != nil {
		m.closed.WithLabelValues(reason).Inc()
	}
}

func (m *connMetrics) setOpen(n int) {
	if m != nil {
		m.open.Set(float64(n))
	}
}

// connLimiter is a listener that keeps at most max connections open. At
// the limit a new connection evicts the one that has waited longest for a
// request (a header still arriving, or an idle keep-alive): such a
// connection holds memory but no work, and whoever is sending a header
// slowly is the oldest. Only when every connection is serving a request is
// the new one refused, with a 503. So a flood of unfinished headers costs
// at most max connections' memory, and a normal client's new connection
// still gets in.
type connLimiter struct {
	net.Listener
	max int
	m   *connMetrics

	mu      sync.Mutex
	conns   map[*limitedConn]*list.Element // its place in waiting, nil while serving
	waiting *list.List                     // *limitedConn waiting for a request, longest first
}

func newConnLimiter(ln net.Listener, max int, m *connMetrics) *connLimiter {
	return &connLimiter{Listener: ln, max: max, m: m, conns: map[*limitedConn]*list.Element{}, waiting: list.New()}
}

// refusal is written to a connection refused at the limit.
var refusal = func() []byte {
	body := `{"error":"the API is at its connection limit (SPOOL_MAX_CONNS); retry shortly"}` + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// Accept returns the next connection, making room for it at the limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l}
		l.mu.Lock()
		var victim *limitedConn
		if l.max > 0 && len(l.conns) >= l.max {
			front := l.waiting.Front()
			if front == nil {
				l.mu.Unlock()
				l.m.count("refused")
				_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_, _ = c.Write(refusal)
				_ = c.Close()
				continue
			}
			victim = front.Value.(*limitedConn)
			l.waiting.Remove(front)
			delete(l.conns, victim)
		}
		l.conns[lc] = l.waiting.PushBack(lc)
		n := len(l.conns)
		l.mu.Unlock()
		if victim != nil {
			l.m.count("evicted")
			_ = victim.Conn.Close()
		}
		l.m.setOpen(n)
		return lc, nil
	}
}

// connState is the http.Server's ConnState hook: it moves a connection
// between waiting (new or idle) and serving, and forgets a closed one.
func (l *connLimiter) connState(c net.Conn, s http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	e, tracked := l.conns[lc]
	if !tracked { // evicted already
		l.mu.Unlock()
		return
	}
	switch s {
	case http.StateNew: // queued by Accept
	case http.StateIdle:
		if e != nil {
			l.waiting.MoveToBack(e)
		} else {
			l.conns[lc] = l.waiting.PushBack(lc)
		}
	case http.StateActive:
		if e != nil {
			l.waiting.Remove(e)
			l.conns[lc] = nil
		}
	case http.StateHijacked, http.StateClosed:
		if e != nil {
			l.waiting.Remove(e)
		}
		delete(l.conns, lc)
	}
	n := len(l.conns)
	l.mu.Unlock()
	l.m.setOpen(n)
}

// evictFirst puts c, answered 431 and lingering in net/http's close, first
// in line for eviction.
func (l *connLimiter) evictFirst(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, tracked := l.conns[c]
	switch {
	case !tracked:
	case e == nil:
		l.conns[c] = l.waiting.PushFront(c)
	default:
		l.waiting.MoveToFront(e)
	}
}

// limitedConn is a connection the limiter tracks.
type limitedConn struct {
	net.Conn
	l *connLimiter
}

// header431 starts net/http's answer to a header over MaxHeaderBytes,
// which it writes to the connection itself, past any handler.
var header431 = []byte("HTTP/1.1 431 ")

func (c *limitedConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, header431) {
		c.l.m.count("header_bytes")
		c.l.evictFirst(c)
	}
	return c.Conn.Write(p)
}
