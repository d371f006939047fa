package pgwire_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// wireCase is one line of testdata/lock2/corpus.txt: a simple query or a
// sequence of extended-protocol messages, sent by a raw v3 client that
// may ask for a client encoding at startup.
type wireCase struct {
	line     int
	text     string
	encoding string
	msgs     []pgproto3.FrontendMessage
	syncs    int // ReadyForQuery answers to wait for
}

// parseCase reads "q[@ENC] <sql>" or "x[@ENC] <msg> | <msg> | ...", where a
// message is "P <name> <sql>", "B <portal> <stmt> [b]", "E <portal>",
// "D S|P <name>", "C S|P <name>", "Q <sql>", "S" or "H"; "-" is the
// unnamed statement or portal, \xHH a raw byte, and {MARKER} a path the
// test watches.
func parseCase(line int, s string, vars map[string]string) (wireCase, error) {
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	kind, rest, _ := strings.Cut(s, " ")
	c := wireCase{line: line, text: rest}
	kind, c.encoding, _ = strings.Cut(kind, "@")
	switch kind {
	case "q":
		c.msgs, c.syncs = []pgproto3.FrontendMessage{&pgproto3.Query{String: unescape(rest)}}, 1
		return c, nil
	case "x":
		for _, part := range strings.Split(rest, " | ") {
			m, err := parseMessage(strings.TrimSpace(part))
			if err != nil {
				return c, fmt.Errorf("line %d: %w", line, err)
			}
			switch m.(type) {
			case *pgproto3.Sync, *pgproto3.Query:
				c.syncs++
			}
			c.msgs = append(c.msgs, m)
		}
		if _, ok := c.msgs[len(c.msgs)-1].(*pgproto3.Sync); !ok {
			return c, fmt.Errorf("line %d: an extended sequence must end with S", line)
		}
		return c, nil
	}
	return c, fmt.Errorf("line %d: unknown case kind %q", line, kind)
}

func parseMessage(s string) (pgproto3.FrontendMessage, error) {
	f := strings.SplitN(s, " ", 3)
	name := func(i int) string {
		if len(f) <= i || f[i] == "-" {
			return ""
		}
		return f[i]
	}
	switch f[0] {
	case "P":
		if len(f) < 3 {
			return nil, fmt.Errorf("P needs a name and SQL: %q", s)
		}
		return &pgproto3.Parse{Name: name(1), Query: unescape(f[2])}, nil
	case "B":
		b := &pgproto3.Bind{DestinationPortal: name(1), PreparedStatement: name(2)}
		if len(f) == 3 && strings.HasSuffix(f[2], " b") {
			b.PreparedStatement = strings.TrimSuffix(f[2], " b")
			if b.PreparedStatement == "-" {
				b.PreparedStatement = ""
			}
			b.ResultFormatCodes = []int16{1}
		}
		return b, nil
	case "E":
		return &pgproto3.Execute{Portal: name(1)}, nil
	case "D", "C":
		if len(f) < 2 || (f[1] != "S" && f[1] != "P") {
			return nil, fmt.Errorf("%s needs S or P: %q", f[0], s)
		}
		if f[0] == "D" {
			return &pgproto3.Describe{ObjectType: f[1][0], Name: name(2)}, nil
		}
		return &pgproto3.Close{ObjectType: f[1][0], Name: name(2)}, nil
	case "Q":
		return &pgproto3.Query{String: unescape(strings.TrimPrefix(s, "Q "))}, nil
	case "S":
		return &pgproto3.Sync{}, nil
	case "H":
		return &pgproto3.Flush{}, nil
	}
	return nil, fmt.Errorf("unknown message %q", s)
}

// unescape turns \xHH into the raw byte (so a case can carry bytes that
// are not UTF-8).
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// startup answers the proxy's password request and reads up to
// ReadyForQuery; errs are a refusal.
func startup(fe *pgproto3.Frontend, password string) ([]pgproto3.ErrorResponse, error) {
	for {
		msg, err := fe.Receive()
		if err != nil {
			return nil, fmt.Errorf("startup: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			fe.Send(&pgproto3.PasswordMessage{Password: password})
			if err := fe.Flush(); err != nil {
				return nil, err
			}
		case *pgproto3.ErrorResponse:
			return []pgproto3.ErrorResponse{*m}, nil
		case *pgproto3.ReadyForQuery:
			return nil, nil
		}
	}
}

// outcome is what the client saw.
type outcome struct {
	rows   [][]string
	errs   []pgproto3.ErrorResponse
	closed bool // the connection ended before every ReadyForQuery
}

// run connects to the proxy as the grant, sends the case and reads until
// every ReadyForQuery it waits for, an end of connection or 20 s.
func runCase(addr, user, password string, c wireCase) (outcome, error) {
	var out outcome
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return out, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	params := map[string]string{"user": user, "database": "x", "application_name": "lock2"}
	if c.encoding != "" {
		params["client_encoding"] = c.encoding
	}
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		return out, err
	}
	if errs, err := startup(fe, password); err != nil || len(errs) > 0 {
		// Refused at startup (e.g. an encoding lock 1 refuses).
		out.errs, out.closed = errs, true
		return out, err
	}
	for _, m := range c.msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		out.closed = true
		return out, nil
	}
	for seen := 0; seen < c.syncs; {
		msg, err := fe.Receive()
		if err != nil {
			out.closed = true
			return out, nil
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			row := make([]string, len(m.Values))
			for i, v := range m.Values {
				row[i] = string(v)
			}
			out.rows = append(out.rows, row)
		case *pgproto3.CopyData:
			out.rows = append(out.rows, []string{string(m.Data)})
		case *pgproto3.CopyInResponse:
			fe.Send(&pgproto3.CopyFail{Message: "the test sends no data"})
			if err := fe.Flush(); err != nil {
				out.closed = true
				return out, nil
			}
		case *pgproto3.ErrorResponse:
			out.errs = append(out.errs, *m)
		case *pgproto3.ReadyForQuery:
			seen++
		}
	}
	fe.Send(&pgproto3.Terminate{})
	_ = fe.Flush()
	return out, nil
}
