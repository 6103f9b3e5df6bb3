package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/spoolq/spool/shared/proctest"
)

// Server is a throwaway PostgreSQL server owned by one test, for tests that
// stop and start the database itself. It is never the shared server.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cred *syscall.Credential
}

// StartServer initialises and starts a server on a free loopback port, and
// removes it at cleanup. Without PostgreSQL's server programs the test
// ends through proctest.Unavailable: skipped here, failed in CI.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := serverBinDir()
	if bin == "" {
		proctest.Unavailable(t, "pgtest: no PostgreSQL server programs (initdb, pg_ctl) found; install postgresql (Debian: apt-get install postgresql)")
	}
	// Not t.TempDir(): its parent is private to root, and the server runs
	// as postgres when the test runs as root (initdb refuses root).
	dir, err := os.MkdirTemp("", "spool-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir, port: freePort(t)}
	if os.Geteuid() == 0 {
		s.cred = postgresUser(t)
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = s.pgctl("-m", "immediate", "stop")
		_ = os.RemoveAll(dir)
	})
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.Start()
	return s
}

// URL is the server's admin URL (database postgres).
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Start starts the stopped server on the same port and waits until it
// accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", s.port, s.dir)
	if err := s.pgctl("-l", filepath.Join(s.dir, "log"), "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.t.Fatalf("pgtest: start server: %v\n%s", err, log)
	}
}

// Stop shuts the server down ("fast": running transactions are cut off).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.pgctl("-m", "fast", "stop"); err != nil {
		s.t.Fatalf("pgtest: stop server: %v", err)
	}
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) pgctl(args ...string) error {
	out, err := s.run("pg_ctl", append([]string{"-D", s.data(), "-w"}, args...)...)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// serverBinDir finds the newest /usr/lib/postgresql/N/bin, or initdb on PATH.
func serverBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if len(dirs) > 0 {
		return filepath.Dir(dirs[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func postgresUser(t testing.TB) *syscall.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("pgtest: running as root and there is no postgres user to run the server as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
