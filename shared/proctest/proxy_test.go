package proctest

import (
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every connection by echoing what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes msg and reads as many bytes back within d.
func roundTrip(t *testing.T, c net.Conn, msg string, d time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

func TestProxyFreezeHoldsBytesAndKeepsConnectionsOpen(t *testing.T) {
	p := StartProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, "before", time.Second); err != nil || got != "before" {
		t.Fatalf("before freeze: got %q, %v; want the echo", got, err)
	}

	p.Freeze()
	// Nothing comes back, and the connection is neither reset nor closed:
	// the read times out.
	got, err := roundTrip(t, c, "during", 300*time.Millisecond)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() || got != "" {
		t.Fatalf("while frozen: got %q, %v; want nothing and a read timeout", got, err)
	}
	// A connection made while frozen is accepted but gets nothing through.
	late, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if got, err := roundTrip(t, late, "late", 300*time.Millisecond); got != "" || err == nil {
		t.Fatalf("new connection while frozen: got %q, %v; want nothing", got, err)
	}

	p.Thaw()
	// What was held back arrives, in order, and traffic flows again.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, len("during"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after thaw: got %q, %v; want the held-back echo", buf, err)
	}
	if got, err := roundTrip(t, c, "after", time.Second); err != nil || got != "after" {
		t.Fatalf("after thaw: got %q, %v; want the echo", got, err)
	}
	_ = late.SetReadDeadline(time.Now().Add(time.Second))
	buf = make([]byte, len("late"))
	if _, err := io.ReadFull(late, buf); err != nil || string(buf) != "late" {
		t.Fatalf("connection made while frozen, after thaw: got %q, %v; want its echo", buf, err)
	}
}
