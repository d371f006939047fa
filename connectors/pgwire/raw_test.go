package pgwire_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// raw is a v3 protocol client that sends exactly the messages a test
// names, as an attacker's client would.
type raw struct {
	t    testing.TB
	conn net.Conn
	fe   *pgproto3.Frontend
}

// rawDirect opens a raw session straight to PostgreSQL (pgconn logs in,
// then hands the connection over).
func rawDirect(t testing.TB, dsn string) *raw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hc.Conn.Close() })
	return &raw{t: t, conn: hc.Conn, fe: hc.Frontend}
}

// rawProxy logs in to the proxy with params added to the startup packet
// and returns the session, or the login error.
func rawProxy(t testing.TB, addr, user, password string, params map[string]string) (*raw, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := &raw{t: t, conn: c, fe: pgproto3.NewFrontend(c, c)}
	p := map[string]string{"user": user, "database": "x"}
	for k, v := range params {
		p[k] = v
	}
	r.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: p})
	if err := r.fe.Flush(); err != nil {
		return nil, err
	}
	for {
		m, err := r.receive()
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			r.fe.Send(&pgproto3.PasswordMessage{Password: password})
			if err := r.fe.Flush(); err != nil {
				return nil, err
			}
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("%s: %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return r, nil
		}
	}
}

func (r *raw) receive() (pgproto3.BackendMessage, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return r.fe.Receive()
}

// send writes messages and flushes them.
func (r *raw) send(msgs ...pgproto3.FrontendMessage) {
	r.t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// until reads answers until n ReadyForQuery messages arrived and returns
// them in a short readable form: "1" ParseComplete, "2" BindComplete, "3"
// CloseComplete, "T" RowDescription, "n" NoData, "t" ParameterDescription,
// "D:v1,v2" DataRow (text of each cell, binary cells hex), "C:tag",
// "E:code", "Z:status", "s" PortalSuspended, "I" EmptyQueryResponse,
// "S:name=value" ParameterStatus, "N" notice. An EOF is "EOF".
func (r *raw) until(n int) []string {
	r.t.Helper()
	var out []string
	for n > 0 {
		m, err := r.receive()
		if err != nil {
			return append(out, "EOF")
		}
		out = append(out, short(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			n--
		}
	}
	return out
}

func short(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ParseComplete:
		return "1"
	case *pgproto3.BindComplete:
		return "2"
	case *pgproto3.CloseComplete:
		return "3"
	case *pgproto3.RowDescription:
		var f []string
		for _, d := range m.Fields {
			f = append(f, fmt.Sprintf("%s/%d/%d", d.Name, d.DataTypeOID, d.Format))
		}
		return "T:" + strings.Join(f, ",")
	case *pgproto3.NoData:
		return "n"
	case *pgproto3.ParameterDescription:
		return "t"
	case *pgproto3.DataRow:
		var v []string
		for _, c := range m.Values {
			if c == nil {
				v = append(v, "NULL")
			} else {
				v = append(v, string(c))
			}
		}
		return "D:" + strings.Join(v, ",")
	case *pgproto3.CommandComplete:
		return "C:" + string(m.CommandTag)
	case *pgproto3.ErrorResponse:
		return "E:" + m.Code
	case *pgproto3.ReadyForQuery:
		return "Z:" + string(m.TxStatus)
	case *pgproto3.PortalSuspended:
		return "s"
	case *pgproto3.EmptyQueryResponse:
		return "I"
	case *pgproto3.ParameterStatus:
		return "S:" + m.Name + "=" + m.Value
	case *pgproto3.NoticeResponse:
		return "N"
	}
	b, _ := json.Marshal(m)
	return string(b)
}
