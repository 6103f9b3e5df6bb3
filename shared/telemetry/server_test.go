package telemetry

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that opens a connection and never finishes its headers is cut
// off after ReadHeaderTimeout instead of holding the connection.
func TestServerDropsSlowHeaders(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(srv.ReadHeaderTimeout + 10*time.Second))
	_, err = io.ReadAll(conn) // returns when the server closes the connection
	waited := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s: ReadHeaderTimeout is not enforced", waited)
	}
	if waited < srv.ReadHeaderTimeout-time.Second || waited > srv.ReadHeaderTimeout+5*time.Second {
		t.Fatalf("connection closed after %s, want about ReadHeaderTimeout (%s)", waited, srv.ReadHeaderTimeout)
	}
}
