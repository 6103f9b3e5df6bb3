package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolq/spool/shared/proctest"
)

// Cluster is a throwaway primary and a streaming standby made from it with
// pg_basebackup -R, for failover tests. Both are owned by one test and
// removed at its cleanup; neither is ever the shared server.
type Cluster struct {
	Primary *Server
	Standby *Server
}

// ClusterOpts tunes a cluster; nil means an asynchronous standby.
type ClusterOpts struct {
	// Synchronous makes the primary wait for the standby's flush before a
	// commit returns (synchronous_standby_names = '*', synchronous_commit
	// on). The standby does not inherit the setting, so once promoted it
	// does not wait for a standby it does not have.
	Synchronous bool
}

// StartCluster initialises and starts a primary, takes a base backup of it
// into a standby, starts the standby and waits until it streams (and, with
// opts.Synchronous, until the primary counts it as synchronous). Without
// PostgreSQL's server programs the test ends through proctest.Unavailable:
// skipped on a developer's machine, failed in CI.
func StartCluster(t testing.TB, opts *ClusterOpts) *Cluster {
	t.Helper()
	if opts == nil {
		opts = &ClusterOpts{}
	}
	bin := serverBinDir()
	if bin == "" {
		proctest.Unavailable(t, "pgtest: no PostgreSQL server programs (initdb, pg_ctl, pg_basebackup) found; install postgresql (Debian: apt-get install postgresql)")
	}
	if _, err := os.Stat(filepath.Join(bin, "pg_basebackup")); err != nil {
		proctest.Unavailable(t, "pgtest: no pg_basebackup in "+bin+"; install postgresql")
	}
	c := &Cluster{Primary: newServer(t, bin), Standby: newServer(t, bin)}
	p, s := c.Primary, c.Standby

	if out, err := p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// PostgreSQL 15's defaults already stream (wal_level replica, 10 WAL
	// senders, hot_standby on); say so, so that the test does not depend on
	// them. Written before the base backup, so the standby has them too.
	appendFile(t, filepath.Join(p.data(), "postgresql.conf"),
		"\n# pgtest.StartCluster\nwal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nwal_keep_size = '256MB'\n")
	appendFile(t, filepath.Join(p.data(), "pg_hba.conf"),
		"\n# pgtest.StartCluster\nhost replication all 127.0.0.1/32 trust\n")
	p.Start()

	if out, err := s.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "postgres",
		"-D", s.data(), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	s.Start()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if opts.Synchronous {
		// ALTER SYSTEM writes the primary's postgresql.auto.conf only: the
		// base backup was taken before it.
		p.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '*'`)
		p.Exec(ctx, `ALTER SYSTEM SET synchronous_commit = 'on'`)
		p.Exec(ctx, `SELECT pg_reload_conf()`)
	}
	want := "async"
	if opts.Synchronous {
		want = "sync"
	}
	c.waitFor(ctx, "the standby to stream ("+want+")", func(conn *pgx.Conn) (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = $1`, want).Scan(&n)
		return n == 1, err
	})
	return c
}

// newServer makes a server directory owned by the user the server runs as,
// on a free port, and stops the server by its data directory at cleanup.
func newServer(t testing.TB, bin string) *Server {
	t.Helper()
	// Not t.TempDir(): its parent is private to root, and the server runs
	// as postgres when the test runs as root (initdb refuses root).
	dir, err := os.MkdirTemp("", "spool-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir, port: loopbackPort(t)}
	if os.Geteuid() == 0 {
		s.cred = postgresUser(t)
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if s.running() {
			_ = s.pgctl("-m", "immediate", "stop")
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("pgtest: log of the server on port %d:\n%s", s.port, tail(string(log), 40))
		}
		_ = os.RemoveAll(dir)
	})
	return s
}

// loopbackPort is a free port below the ephemeral range (see
// proctest.FreeAddr): a server restarted or promoted later must find it
// still free.
func loopbackPort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(proctest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

// URL is the two-host URL a client fails over with: it connects to
// whichever of the primary and the standby accepts writes.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
		c.Primary.port, c.Standby.port)
}

// Crash stops the primary the way a lost machine does (pg_ctl stop -m
// immediate: no checkpoint, no goodbye to clients or the standby).
func (c *Cluster) Crash() {
	c.Primary.t.Helper()
	if err := c.Primary.pgctl("-m", "immediate", "stop"); err != nil {
		c.Primary.t.Fatalf("pgtest: crash primary: %v", err)
	}
}

// Promote turns the standby into a primary and waits until it accepts
// writes.
func (c *Cluster) Promote() {
	s := c.Standby
	s.t.Helper()
	if err := s.pgctl("promote"); err != nil {
		s.t.Fatalf("pgtest: promote standby: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitFor(ctx, s, "the promoted standby to accept writes", func(conn *pgx.Conn) (bool, error) {
		var inRecovery bool
		err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
		return !inRecovery, err
	})
}

// StopStreaming makes the standby lag for good: it clears primary_conninfo
// (the WAL receiver exits) and waits until the primary has no standby
// connected. Commits on an asynchronous primary then reach the primary
// only, as with a standby far behind. Do not call it on a synchronous
// cluster: commits would wait for the standby forever.
func (c *Cluster) StopStreaming() {
	s := c.Standby
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.Exec(ctx, `ALTER SYSTEM SET primary_conninfo = ''`)
	s.Exec(ctx, `SELECT pg_reload_conf()`)
	c.waitFor(ctx, "the standby to stop streaming", func(conn *pgx.Conn) (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication`).Scan(&n)
		return n == 0, err
	})
}

// Exec runs sql on the server as postgres (database postgres) and ends the
// test on error.
func (s *Server) Exec(ctx context.Context, sql string) {
	s.t.Helper()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		s.t.Fatalf("pgtest: connect to port %d: %v", s.port, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		s.t.Fatalf("pgtest: %s on port %d: %v", sql, s.port, err)
	}
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

func (c *Cluster) waitFor(ctx context.Context, what string, cond func(*pgx.Conn) (bool, error)) {
	c.Primary.t.Helper()
	waitFor(ctx, c.Primary, what, cond)
}

// waitFor polls cond on a connection to s until it holds or ctx ends.
func waitFor(ctx context.Context, s *Server, what string, cond func(*pgx.Conn) (bool, error)) {
	s.t.Helper()
	var last error
	for {
		conn, err := pgx.Connect(ctx, s.URL())
		if err == nil {
			var ok bool
			ok, err = cond(conn)
			conn.Close(ctx)
			if ok && err == nil {
				return
			}
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("pgtest: timed out waiting for %s (last error: %v)", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// running reports whether the server's postmaster.pid names a live process.
func (s *Server) running() bool {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return false
	}
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
