// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb in a
// temporary directory, a postgres server on a free loopback port with its
// Unix socket in that directory, stopped by PID and removed afterwards. It
// uses Debian's postgresql package (binaries under
// /usr/lib/postgresql/VERSION/bin, installed by scripts/install-test-deps.sh)
// and never touches a packaged cluster.
//
// initdb refuses to run as root, so under root the cluster runs as the user
// nobody, with the directory handed to it.
//
// A test package starts one cluster in TestMain (Start), and each test makes
// its own database in it (Cluster.NewDatabase). Require turns a failed
// start into the project's policy for missing prerequisites
// (testutil.Unavailable: a failure under CI=true, a skip otherwise).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// ErrUnavailable is wrapped by Start's error when PostgreSQL is not
// installed.
var ErrUnavailable = errors.New("pgtest: PostgreSQL is not installed")

// superuser is the cluster's superuser, which the DSNs connect as.
const superuser = "icebreaker"

// Cluster is a running throwaway cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	seq  atomic.Int64
	stop sync.Once
}

// binDir returns the newest /usr/lib/postgresql/*/bin that has initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", fmt.Errorf("%w: no /usr/lib/postgresql/*/bin/initdb (install the postgresql package: scripts/install-test-deps.sh)", ErrUnavailable)
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	return filepath.Dir(dirs[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start creates and starts a cluster. The caller must Stop it.
func Start() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "icebreaker-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	attr, err := clusterUser(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", superuser,
		"--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = attr(false)
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	port, err := freeTCPPort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{dir: dir, port: port, done: make(chan struct{})}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=100")
	c.cmd.SysProcAttr = attr(true)
	c.cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	if err := c.waitReady(30 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		c.Stop()
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return c, nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.done:
			return fmt.Errorf("pgtest: postgres exited: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not ready: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Port returns the TCP port the cluster listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DSN returns a postgres:// URL for database db over loopback TCP.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, db)
}

// NewDatabase creates an empty database with a fresh name and returns its
// DSN.
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.seq.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.DSN(name), nil
}

// Stop stops the server (SIGINT: fast shutdown, then SIGKILL to its process
// group after 10 s) and removes the directory. It may be called more than
// once.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	c.stop.Do(func() {
		interrupt(c.cmd.Process)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			killGroup(c.cmd.Process)
			<-c.done
		}
		os.RemoveAll(c.dir)
	})
}

// Require returns the cluster that TestMain started, or ends the test: as
// testutil.Unavailable when PostgreSQL is not installed, with t.Fatal for
// any other failure to start it.
func Require(t testing.TB, c *Cluster, startErr error) *Cluster {
	t.Helper()
	if c != nil {
		return c
	}
	if errors.Is(startErr, ErrUnavailable) {
		testutil.Unavailable(t, "%v", startErr)
		return nil
	}
	t.Fatalf("PostgreSQL test cluster: %v", startErr)
	return nil
}

// NewDatabase is Cluster.NewDatabase for a test: it fails the test on error.
func NewDatabase(t testing.TB, c *Cluster) string {
	t.Helper()
	dsn, err := c.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Shared is one cluster for a test package, started by the first test that
// asks for it. TestMain stops it after m.Run:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
//
// Its zero value is ready; it is safe for concurrent use.
type Shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Get starts the cluster on first use and returns it, or ends the test as
// Require does.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() { s.c, s.err = Start() })
	return Require(t, s.c, s.err)
}

// Stop stops the cluster if it was started.
func (s *Shared) Stop() { s.c.Stop() }
