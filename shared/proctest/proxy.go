package proctest

import (
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on a loopback port between a process under test and
// a server (PostgreSQL), which a test can freeze to cut the process off the
// way a network partition does: while frozen, connections stay open (no
// RST, no FIN reaches either side) but no byte gets through in either
// direction, new connections are accepted but not forwarded, and a close
// on one side is not passed on. Thaw delivers what was held back, in order,
// as TCP would once a link heals.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	thawed chan struct{}         // non-nil while frozen; closed by Thaw
	conns  map[net.Conn]struct{} // both ends of every open connection
	closed bool
	wg     sync.WaitGroup // the accept loop and every connection's pipes
}

// StartProxy listens on a free loopback port and forwards every connection
// to target (host:port); it is closed at cleanup.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Freeze stops forwarding. A chunk already past the gate when Freeze is
// called may still arrive, as a packet already on the wire would.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thawed == nil {
		p.thawed = make(chan struct{})
	}
}

// Thaw resumes forwarding.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thawed != nil {
		close(p.thawed)
		p.thawed = nil
	}
}

// Close stops listening and closes every connection (thawing first, so no
// pipe stays blocked); it waits for the proxy's goroutines to end.
func (p *Proxy) Close() {
	p.Thaw()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// gate returns at once unless the proxy is frozen, else when it thaws.
func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.thawed
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// track records an open connection; it reports false (and closes c) once
// the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(client) {
			return
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

// serve connects client to the target (once not frozen: a connection made
// during a freeze hangs like one made across a partition) and pipes both
// ways until either side closes.
func (p *Proxy) serve(client net.Conn) {
	defer p.untrack(client)
	p.gate()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	var pipes sync.WaitGroup
	pipes.Go(func() { p.pipe(server, client) })
	pipes.Go(func() { p.pipe(client, server) })
	pipes.Wait()
}

// pipe copies src to dst through the gate; when src ends, it closes both
// (also through the gate: a close is not passed on while frozen), which
// ends the pipe of the other direction too.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil { // EOF, a reset, or closed by the other pipe or Close
			p.gate()
			dst.Close()
			src.Close()
			return
		}
	}
}
