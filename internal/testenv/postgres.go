package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PasswordUser is the role that authenticates with a password (SCRAM) over
// TCP. It owns every database CreateDB makes.
const PasswordUser = "toolgate_app"

// RequireEnv is the environment variable that turns a missing PostgreSQL
// into a test failure instead of a skip.
const RequireEnv = "TOOLGATE_REQUIRE_POSTGRES"

// PG is a running throwaway PostgreSQL server.
type PG struct {
	dir      string // temporary root: data/, the socket and the log
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
	dbs      atomic.Int64
}

// shared is the server of this test binary, started by the first call to
// Postgres and stopped by Main.
var shared struct {
	mu sync.Mutex
	pg *PG
}

// Postgres returns the test binary's PostgreSQL server, starting it on the
// first call. It skips the test when PostgreSQL is not installed (fails it
// when TOOLGATE_REQUIRE_POSTGRES=1), and fails it when the server cannot
// start.
func Postgres(t testing.TB) *PG {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg != nil && !shared.pg.stopped() {
		return shared.pg
	}
	pg := start(t, findBinaries)
	shared.pg = pg
	return pg
}

// NewPostgres starts a private server for one test and stops it when the
// test ends. Use it when the test stops or breaks the server; otherwise
// share the binary's server through Postgres.
func NewPostgres(t testing.TB) *PG {
	t.Helper()
	pg := start(t, findBinaries)
	t.Cleanup(pg.Stop)
	return pg
}

// Main runs the tests of a package and stops the shared server afterwards,
// also when the process is interrupted. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// cleanups run after the tests, before the process exits.
func Main(m *testing.M, cleanups ...func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		stopShared()
		fmt.Fprintf(os.Stderr, "testenv: stopped PostgreSQL on %v\n", s)
		os.Exit(2)
	}()
	code := m.Run()
	signal.Stop(sigs)
	for _, f := range cleanups {
		f()
	}
	stopShared()
	os.Exit(code)
}

func stopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg != nil {
		shared.pg.Stop()
		shared.pg = nil
	}
}

// Port is the TCP port the server listens on (127.0.0.1).
func (pg *PG) Port() int { return pg.port }

// SocketDir is the folder holding the server's unix socket.
func (pg *PG) SocketDir() string { return pg.dir }

// Password is PasswordUser's password.
func (pg *PG) Password() string { return pg.password }

// DSN is a connection URL for the superuser "postgres" (trusted on
// loopback) to the named database.
func (pg *PG) DSN(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, url.PathEscape(dbname))
}

// PasswordDSN is a connection URL for PasswordUser, with its password, to
// the named database.
func (pg *PG) PasswordDSN(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(PasswordUser, pg.password),
		Host:     "127.0.0.1:" + strconv.Itoa(pg.port),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDB creates a database with a unique name, owned by PasswordUser,
// drops it when the test ends, and returns its superuser DSN. The name is
// the last path element of the DSN (DBName extracts it).
func (pg *PG) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", pg.dbs.Add(1), dbSafe(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	if err := pg.admin(context.Background(), fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{name}.Sanitize(), PasswordUser)); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if pg.stopped() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pg.admin(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
	})
	return pg.DSN(name)
}

// DBName returns the database name of a DSN made by DSN or PasswordDSN.
func DBName(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10s) and
// removes its files. It is safe to call more than once.
func (pg *PG) Stop() {
	pg.stopOnce.Do(func() {
		if pg.cmd != nil && pg.cmd.Process != nil {
			_ = pg.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-pg.exited:
			case <-time.After(10 * time.Second):
				_ = pg.cmd.Process.Kill()
				<-pg.exited
			}
		}
		_ = os.RemoveAll(pg.dir)
	})
}

func (pg *PG) stopped() bool {
	select {
	case <-pg.exited:
		return true
	default:
		return false
	}
}

// admin runs one statement as the superuser over the unix socket.
func (pg *PG) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", pg.dir, pg.port))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// start finds the binaries, runs initdb and starts a server.
func start(t testing.TB, find func() (string, error)) *PG {
	t.Helper()
	bin, err := find()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("testenv: %v (and %s=1 requires it)", err, RequireEnv)
		}
		t.Skipf("testenv: %v; set %s=1 to fail instead of skipping", err, RequireEnv)
	}
	pg, err := launch(bin)
	if err != nil {
		t.Fatalf("testenv: start PostgreSQL: %v", err)
	}
	return pg
}

// findBinaries returns the folder holding initdb and postgres: the newest
// /usr/lib/postgresql/*/bin, else the folder of initdb on PATH.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed (no initdb and postgres in /usr/lib/postgresql/*/bin or on PATH)")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// runAs describes how to drop root: PostgreSQL refuses to run as root.
type runAs struct {
	root     bool
	uid, gid int
}

func lookupRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("running as root, and there is no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{root: true, uid: uid, gid: gid}, nil
}

// command builds a command that runs as the postgres user when we are root.
// One-shot commands go through runuser; the long-running server gets its
// credentials from SysProcAttr instead (see launch).
func (r runAs) command(name string, args ...string) *exec.Cmd {
	if r.root {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func launch(bin string) (*PG, error) {
	ra, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tgpg-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()
	if ra.root {
		if err := os.Chown(dir, ra.uid, ra.gid); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := ra.command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, tail(out))
	}
	// Trust on the socket and for the superuser on loopback; every other
	// role (PasswordUser, roles tests create) must prove its password, so
	// tests exercise real credentials.
	hba := "local all all trust\n" +
		"host all postgres 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	hbaPath := filepath.Join(data, "pg_hba.conf")
	if err := os.WriteFile(hbaPath, []byte(hba), 0o600); err != nil {
		return nil, err
	}
	if ra.root {
		if err := os.Chown(hbaPath, ra.uid, ra.gid); err != nil {
			return nil, err
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		pg, err := serve(bin, dir, ra)
		if err == nil {
			if err := pg.setup(); err != nil {
				pg.Stop()
				return nil, err
			}
			ok = true
			return pg, nil
		}
		lastErr = err // most likely the free port was taken meanwhile
	}
	return nil, lastErr
}

// serve starts the postmaster on a free port and waits until it accepts
// connections.
func serve(bin, dir string, ra runAs) (*PG, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "max_prepared_transactions=10",
		"-c", "shared_buffers=32MB",
		"-c", "password_encryption=scram-sha-256",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server gets the postgres credentials directly, not through
	// runuser: with runuser in between, the parent-death signal would kill
	// runuser and leave the postmaster running.
	cmd.SysProcAttr = sysProcAttr(ra)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	pg := &PG{dir: dir, port: port, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(pg.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := pg.admin(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return pg, nil
		}
		select {
		case <-pg.exited:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres exited during startup: %s", tail(log))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			pg.Stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres did not accept connections within 30s: %s", tail(log))
		}
	}
}

// setup creates the password role.
func (pg *PG) setup() error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	pg.password = "pw-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The password is random hex, so quoting it as a literal is safe.
	return pg.admin(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", PasswordUser, pg.password))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of a log, for error messages.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// dbSafe turns a test name into a database name fragment.
func dbSafe(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	return sb.String()
}
