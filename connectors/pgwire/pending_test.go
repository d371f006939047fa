package pgwire_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/connectors/pgwire"
)

// TestBoundsPendingLogins: connections that have not logged in are
// capped per listener; one more is refused at once with 53300 naming the
// key, and nothing of it reaches the broker or the target. A closed
// pending connection frees its place, and a session that has logged in
// no longer holds one.
func TestBoundsPendingLogins(t *testing.T) {
	e := newEnvWith(t, func(c *pgwire.Config) { c.MaxPendingLogins = 2 })
	ctx := context.Background()
	addr := e.srv.Addr().String()
	backends := "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = '" + e.dbname + "'"
	upBefore, recBefore := e.scalar(t, backends), e.rec.Len()
	goroutines := runtime.NumGoroutine()

	idle := make([]net.Conn, 2) // connect and send nothing
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	if code, msg := refusedRaw(t, addr); code != "53300" || !strings.Contains(msg, "max_pending_logins") {
		t.Fatalf("third connection: %s %q, want 53300 naming max_pending_logins", code, msg)
	}
	cfg, err := pgx.ParseConfig(e.dsn("support-bot/triage", e.key))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "pending-refused"
	if _, err := pgx.ConnectConfig(ctx, cfg); sqlstate(err) != "53300" || !strings.Contains(err.Error(), "max_pending_logins") {
		t.Fatalf("a client while full: %v, want 53300 naming max_pending_logins", err)
	}
	if got := e.scalar(t, backends); got != upBefore {
		t.Fatalf("target backends %s before the refusals, %s after: a refused connection reached the target", upBefore, got)
	}
	if n := e.rec.Len(); n != recBefore {
		t.Fatalf("%d events recorded for refused connections: %v", n-recBefore, e.rec.Events()[recBefore:])
	}

	_ = idle[0].Close()
	var s1 *pgx.Conn
	for i := 0; i < 200 && s1 == nil; i++ { // the proxy notices the close asynchronously
		if s1, err = pgx.Connect(ctx, e.dsn("support-bot/triage", e.key)); err != nil {
			sleepShort()
		}
	}
	if s1 == nil {
		t.Fatalf("after closing an idle connection: %v", err)
	}
	// s1 has logged in, so with the other idle connection still open a
	// second session fits too.
	s2 := e.connect(t, "support-bot/triage", e.key)
	for _, c := range []*pgx.Conn{s1, s2} {
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 1 {
			t.Fatalf("logged-in session: %d, %v", n, err)
		}
	}
	_ = s1.Close(ctx)
	_ = s2.Close(ctx)
	_ = idle[1].Close()
	checkGoroutines(t, goroutines)
}

// refusedRaw connects, sends a startup packet and returns the SQLSTATE
// and message of the ErrorResponse, failing unless the server then
// closes the connection.
func refusedRaw(t *testing.T, addr string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	f := pgproto3.NewFrontend(c, c)
	f.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "support-bot/triage", "database": "x", "application_name": "pending-refused"}})
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := f.Receive()
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	er, ok := m.(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("answer %T, want an ErrorResponse", m)
	}
	code, msg := er.Code, er.Message
	if _, err := f.Receive(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the refusal: %v, want the connection closed", err)
	}
	return code, msg
}
