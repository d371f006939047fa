package testenv_test

import (
	"context"
	"strings"
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
