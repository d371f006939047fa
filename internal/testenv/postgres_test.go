package testenv_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresStartsOncePerBinary(t *testing.T) {
	a := testenv.Postgres(t)
	b := testenv.Postgres(t)
	if a != b {
		t.Fatal("second call started another server; want the shared one")
	}
	if a.Port() <= 0 {
		t.Fatalf("Port() = %d", a.Port())
	}
	conn := connect(t, a.DSN("postgres"))
	var fsync string
	if err := conn.QueryRow(context.Background(), "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("fsync = %q, want off", fsync)
	}
}

func TestCreateDBGivesSeparateDatabases(t *testing.T) {
	pg := testenv.Postgres(t)
	d1, d2 := pg.CreateDB(t), pg.CreateDB(t)
	if testenv.DBName(d1) == testenv.DBName(d2) {
		t.Fatalf("both databases are named %q", testenv.DBName(d1))
	}
	c1, c2 := connect(t, d1), connect(t, d2)
	ctx := context.Background()
	if _, err := c1.Exec(ctx, "CREATE TABLE only_in_one (id int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c2.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_one'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a table created in the first database is visible in the second")
	}
	var db string
	if err := c1.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != testenv.DBName(d1) {
		t.Errorf("current_database() = %q, want %q", db, testenv.DBName(d1))
	}
}

func TestPasswordDSN(t *testing.T) {
	pg := testenv.Postgres(t)
	name := testenv.DBName(pg.CreateDB(t))
	conn := connect(t, pg.PasswordDSN(name))
	var who string
	if err := conn.QueryRow(context.Background(), "SELECT current_user").Scan(&who); err != nil {
		t.Fatal(err)
	}
	if who != testenv.PasswordUser {
		t.Errorf("current_user = %q, want %q", who, testenv.PasswordUser)
	}
	// The role owns the database, so it can create tables in it.
	if _, err := conn.Exec(context.Background(), "CREATE TABLE mine (id int)"); err != nil {
		t.Fatalf("owner cannot create a table: %v", err)
	}

	// The password is really checked.
	bad := strings.Replace(pg.PasswordDSN(name), pg.Password(), "wrong-password", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, bad)
	if err == nil {
		c.Close(ctx)
		t.Fatal("connected with a wrong password")
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password error = %v, want password authentication failed", err)
	}
}

func TestNewPostgresStops(t *testing.T) {
	pg := testenv.NewPostgres(t)
	if pg == testenv.Postgres(t) {
		t.Fatal("NewPostgres returned the shared server")
	}
	dsn := pg.DSN("postgres")
	connect(t, dsn).Close(context.Background())
	pg.Stop()
	pg.Stop() // idempotent
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
}

// fakeTB records how a helper ended the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingBinaries(t *testing.T) {
	missing := func() (string, error) { return "", errors.New("PostgreSQL is not installed") }
	run := func(f *fakeTB) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			testenv.StartWith(f, missing)
		}()
		<-done
	}

	t.Setenv(testenv.RequireEnv, "")
	f := &fakeTB{TB: t}
	run(f)
	if f.failed != "" || !strings.Contains(f.skipped, "not installed") || !strings.Contains(f.skipped, testenv.RequireEnv) {
		t.Errorf("without %s: skipped %q, failed %q; want a skip that names the variable", testenv.RequireEnv, f.skipped, f.failed)
	}

	t.Setenv(testenv.RequireEnv, "1")
	f = &fakeTB{TB: t}
	run(f)
	if f.skipped != "" || !strings.Contains(f.failed, "not installed") {
		t.Errorf("with %s=1: skipped %q, failed %q; want a failure", testenv.RequireEnv, f.skipped, f.failed)
	}
}

// TestServerDiesWithProcess kills a test process that started a server and
// checks that the server does not outlive it.
func TestServerDiesWithProcess(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		pg := testenv.Postgres(t)
		fmt.Printf("SERVER %d %s\n", pg.Port(), pg.SocketDir())
		select {} // wait to be killed
	}
	testenv.Postgres(t) // skip here, not in the child, when PostgreSQL is missing
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTENV_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var port int
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "SERVER %d %s", &port, &dir); err == nil {
			break
		}
	}
	if port == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the child did not report a server")
	}
	defer os.RemoveAll(dir)
	pidText, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(pidText), "\n", 2)[0])
	if pid <= 0 {
		t.Fatalf("bad postmaster.pid: %q", pidText)
	}

	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d outlived its test process by 10s", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)); err == nil {
		c.Close(ctx)
		t.Fatal("the server still accepts connections after its test process died")
	}
}
