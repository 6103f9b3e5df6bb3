package proctest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PgBouncer pool modes.
const (
	SessionPooling     = "session"
	TransactionPooling = "transaction"
)

// PgBouncer is a pgbouncer process a test started in front of a PostgreSQL
// server, on a loopback port of its own.
type PgBouncer struct {
	Addr string // host:port it listens on
	Mode string // SessionPooling or TransactionPooling
	Proc *Proc
}

// StartPgBouncer runs pgbouncer (Debian's package) in pool mode mode in
// front of the server serverURL names (any database on it, the client's
// user, trust auth: the server's own auth applies), with its ini and user
// list in t.TempDir(). It is stopped at cleanup (SIGTERM to its PID, then
// SIGKILL). Without pgbouncer the test ends with Unavailable.
func StartPgBouncer(t testing.TB, serverURL, mode string) *PgBouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer" // Debian installs it outside a user's PATH
		if _, err := os.Stat(bin); err != nil {
			Unavailable(t, "pgbouncer is not installed (apt-get install pgbouncer)")
		}
	}
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("pgbouncer: server URL %q has no host", serverURL)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	addr := FreeAddr(t)
	host, listenPort, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	users := filepath.Join(dir, "userlist.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	role := u.User.Username()
	if role == "" {
		role = "postgres"
	}
	// The server is told the user the client gave; the list only lets it in.
	if err := os.WriteFile(users, fmt.Appendf(nil, "%q \"\"\n", role), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.Join([]string{
		"[databases]",
		fmt.Sprintf("* = host=%s port=%s", u.Hostname(), port),
		"[pgbouncer]",
		"listen_addr = " + host,
		"listen_port = " + listenPort,
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = " + users,
		"pool_mode = " + mode,
		"max_client_conn = 500",
		// Session mode gives each client connection a server connection of
		// its own: enough for an API, a worker and the test's pool.
		"default_pool_size = 40",
		"server_check_delay = 0",
		"log_connections = 0",
		"log_disconnections = 0",
		"",
	}, "\n")
	if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var args []string
	if os.Geteuid() == 0 {
		// pgbouncer refuses to run as root; it reads its files first, then
		// switches user.
		args = append(args, "-u", unprivilegedUser(t))
	}
	b := &PgBouncer{Addr: addr, Mode: mode}
	b.Proc = Start(t, bin, nil, append(args, ini)...)
	t.Cleanup(func() { // runs before Start's cleanup, which kills what is left
		if err := syscall.Kill(b.Proc.PID(), syscall.SIGTERM); err == nil {
			b.Proc.Wait(5 * time.Second)
		}
	})
	Eventually(t, 10*time.Second, "pgbouncer to listen on "+addr, func() bool {
		if code, exited := b.Proc.Wait(0); exited {
			t.Fatalf("pgbouncer exited with %d:\n%s", code, b.Proc.Output())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return b
}

// URL is dbURL (a URL of the server behind it) pointed at the pooler, with
// params ("key=value") added to its query.
func (b *PgBouncer) URL(dbURL string, params ...string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		panic(fmt.Sprintf("pgbouncer: bad URL: %v", err))
	}
	u.Host = b.Addr
	q := u.Query()
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func unprivilegedUser(t testing.TB) string {
	for _, name := range []string{"postgres", "pgbouncer", "nobody"} {
		if _, err := user.Lookup(name); err == nil {
			return name
		}
	}
	Unavailable(t, "pgbouncer: running as root and no postgres, pgbouncer or nobody user to run it as")
	return ""
}
