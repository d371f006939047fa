// Package dbtest gives tests a throwaway PostgreSQL database. It is a small
// stand-in for internal/testenv and will be replaced by it: it uses
// TOOLGATE_TEST_PG_DSN when set (a superuser DSN; each test gets a fresh
// database in that server), and otherwise starts one private server per
// test binary with initdb into a temporary directory, run as the postgres
// user through runuser when the tests run as root.
//
// Package dbtest is for tests only and must never be imported by
// production code.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// EnvDSN names the variable that points tests at an existing server.
const EnvDSN = "TOOLGATE_TEST_PG_DSN"

// pgBin is where Debian installs PostgreSQL 15.
const pgBin = "/usr/lib/postgresql/15/bin"

// server is the private server of this test binary. It is shared by every
// test in the binary, started on first use and stopped by Main; this is
// the one piece of package state, and it exists only in test binaries.
var server struct {
	once  sync.Once
	admin string
	dir   string
	cmd   *exec.Cmd
	err   error
}

// Main runs the tests and then stops the private server, if one started.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stop()
	os.Exit(code)
}

// Postgres returns the DSN of a new, empty database. It skips the test when
// no PostgreSQL can be found or started.
func Postgres(t testing.TB) string {
	t.Helper()
	admin, err := adminDSN()
	if err != nil {
		t.Skipf("no PostgreSQL for tests: %v", err)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDB(admin, name)
}

// withDB returns admin with its database replaced by name, for both DSN
// forms: a postgres:// URL and key=value pairs (where a later dbname wins).
func withDB(admin, name string) string {
	if u, err := url.Parse(admin); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return admin + " dbname=" + name
}

func adminDSN() (string, error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, nil
	}
	server.once.Do(start)
	return server.admin, server.err
}

func start() {
	initdb := filepath.Join(pgBin, "initdb")
	if _, err := os.Stat(initdb); err != nil {
		server.err = fmt.Errorf("%s not found and %s not set", initdb, EnvDSN)
		return
	}
	dir, err := os.MkdirTemp("", "toolgate-pg-")
	if err != nil {
		server.err = err
		return
	}
	server.dir = dir
	asPostgres := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() != 0 {
			return exec.Command(name, args...)
		}
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			server.err = fmt.Errorf("running as root needs a postgres user: %w", err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			server.err = err
			return
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		server.err = fmt.Errorf("initdb: %v: %s", err, out)
		return
	}
	cmd := asPostgres(filepath.Join(pgBin, "postgres"), "-D", data, "-k", dir, "-p", "5432",
		"-c", "listen_addresses=", "-c", "max_connections=200", "-c", "shared_buffers=64MB")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stdout = nil
	logf, _ := os.Create(filepath.Join(dir, "postgres.log"))
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		server.err = fmt.Errorf("start postgres: %w", err)
		return
	}
	server.cmd = cmd
	admin := fmt.Sprintf("host=%s port=5432 user=postgres sslmode=disable", dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, _ := sql.Open("pgx", admin+" dbname=postgres")
		err = db.Ping()
		db.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			server.err = fmt.Errorf("postgres did not come up: %v: %s", err, log)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	server.admin = admin
}

func stop() {
	if server.cmd != nil && server.cmd.Process != nil {
		// SIGINT is PostgreSQL's fast shutdown; runuser forwards it.
		_ = syscall.Kill(-server.cmd.Process.Pid, syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- server.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-server.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if server.dir != "" {
		_ = os.RemoveAll(server.dir)
	}
}
