package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// Door is the front door name passthrough records carry.
const Door = "pgwire"

// Pipeline is the broker as the proxy sees it. *broker.Broker implements it.
type Pipeline interface {
	Identify(ctx context.Context, cr broker.Credentials) (broker.Caller, error)
	OpenSession(ctx context.Context, s broker.Session) (string, error)
	CloseSession(ctx context.Context, id string, c broker.Caller, door, target string, st broker.SessionStats)
	// StatementDeferred decides a statement; a non-nil commit must succeed
	// before any of the statement's results reach the client.
	StatementDeferred(ctx context.Context, sc broker.StatementCall) (broker.StatementDecision, func(context.Context) error, error)
	StatementDone(ctx context.Context, o broker.StatementOutcome)
	MaskCell(target, column string, value []byte) ([]byte, bool)
	// MaskColumn resolves MaskCell once for a result column; nil means
	// none of its cells can change.
	MaskColumn(target, column string, shortInteger bool) func([]byte) ([]byte, bool)
	MaskText(s string) string
}

var _ Pipeline = (*broker.Broker)(nil)

// Config configures one listener.
type Config struct {
	// Listen is the address to listen on, e.g. 127.0.0.1:6432.
	Listen string
	// Target is the target name policy and masking refer to.
	Target string
	// DSN is the target's connection string. It is a secret.
	DSN string
	// TLS, when set, answers SSLRequest and direct TLS with it.
	TLS *tls.Config
	// AllowPlaintext permits a non-loopback listener without TLS (the
	// client's password, a grant token, then crosses the network in clear).
	AllowPlaintext bool
	// StartupTimeout bounds the time from connect to authenticated; 0
	// means 10s.
	StartupTimeout time.Duration
	// IdentifyEvery is how often a session's credential is verified again
	// (revoked or expired grants end the session at its next statement);
	// 0 means 2s.
	IdentifyEvery time.Duration
	// StatementTimeout is the target's statement_timeout, set on every
	// upstream session; 0 leaves the server's.
	StatementTimeout time.Duration
	// ReadOnly makes every upstream session default to read-only
	// transactions and refuses write and DDL statements.
	ReadOnly bool
	// MaxConnsPerGrant caps the open sessions of one grant (of one graph
	// and node for API-key sessions); 0 means 10.
	MaxConnsPerGrant int
	// MaxPendingLogins caps the connections that have not yet logged in
	// (authenticated and admitted under MaxConnsPerGrant); one more is
	// refused at once with SQLSTATE 53300. 0 means 256.
	MaxPendingLogins int
	// MaxMessageBytes caps one protocol message in either direction,
	// DataRows excepted; 0 means 16 MiB.
	MaxMessageBytes int
	// MaxRowBytes caps one result row (DataRow, COPY data); 0 means 16 MiB.
	MaxRowBytes int
	// MaxCellBytes caps one value of a result row or a Bind parameter; 0
	// means 8 MiB.
	MaxCellBytes int
	// Login picks each session's database login (lock 2); nil runs every
	// session as the DSN's login.
	Login UpstreamLogin
	// PreviewTimeout bounds the effect preview of a held write (never
	// longer than StatementTimeout); 0 means 5s. PreviewLockTimeout bounds
	// its wait for a row lock; 0 means 1s. PreviewRows caps its sample; 0
	// means 20.
	PreviewTimeout     time.Duration
	PreviewLockTimeout time.Duration
	PreviewRows        int
}

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("pgwire: listen is required")
	case c.Target == "":
		return errors.New("pgwire: target is required")
	case c.DSN == "":
		return fmt.Errorf("pgwire: target %s has no dsn", c.Target)
	}
	if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		return fmt.Errorf("pgwire: target %s: invalid dsn", c.Target)
	}
	if c.TLS == nil && !c.AllowPlaintext && !loopback(c.Listen) {
		return fmt.Errorf("pgwire: listener %s is not a loopback address and has no TLS certificate; passwords would cross the network in clear (configure tls_cert/tls_key)", c.Listen)
	}
	return nil
}

// defaults fills in the zero values.
func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.StartupTimeout <= 0 {
		c.StartupTimeout = 10 * time.Second
	}
	if c.IdentifyEvery <= 0 {
		c.IdentifyEvery = 2 * time.Second
	}
	def(&c.MaxConnsPerGrant, defaultMaxConnsPerGrant)
	def(&c.MaxPendingLogins, defaultMaxPendingLogins)
	def(&c.MaxMessageBytes, defaultMaxMessageBytes)
	def(&c.MaxRowBytes, defaultMaxRowBytes)
	def(&c.MaxCellBytes, defaultMaxCellBytes)
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is one Postgres passthrough listener.
type Server struct {
	cfg  Config
	pipe Pipeline
	log  *zap.Logger
	up   *pgconn.Config

	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	cancels map[cancelKey]cancelTarget
	// perGrant counts open sessions by connKey; live holds them.
	perGrant map[string]int
	live     map[*session]struct{}
	closed   bool
	// logins counts the connections not yet logged in, and the refusals.
	logins loginCount
	// byRemote and sessions let CloseSessions find a session's connection.
	byRemote map[string]net.Conn
	sessions map[string]*openSession

	catalog *catalog
	classes *classCache
	// lock1Off is a test switch (export_test.go), never configuration.
	lock1Off bool
}

type cancelKey struct {
	pid    uint32
	secret uint32
}

type cancelTarget struct {
	network, addr string
	pid           uint32
	secret        []byte
}

// New returns a Server for a valid config. It does not listen yet.
func New(cfg Config, pipe Pipeline, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pipe == nil {
		return nil, errors.New("pgwire: a pipeline is required")
	}
	cfg.defaults()
	up, err := pgconn.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgwire: target %s: invalid dsn", cfg.Target)
	}
	s := &Server{cfg: cfg, pipe: pipe, log: log.With(zap.String("target", cfg.Target)), up: up,
		conns: map[net.Conn]struct{}{}, cancels: map[cancelKey]cancelTarget{}, perGrant: map[string]int{}, live: map[*session]struct{}{},
		byRemote: map[string]net.Conn{}, sessions: map[string]*openSession{}}
	s.pipe = closingPipe{Pipeline: pipe, srv: s}
	s.catalog = &catalog{up: up, tables: map[uint32]*tableInfo{}}
	s.classes = newClassCache()
	return s, nil
}

// Start listens and serves in the background until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("pgwire: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Warn("accept failed", zap.Error(err))
				time.Sleep(50 * time.Millisecond)
				continue
			}
			slot, verdict := s.accept(c)
			switch verdict {
			case acceptClosed:
				_ = c.Close()
				return
			case acceptRefused:
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.refuse(c)
				}()
				continue
			case acceptDropped:
				_ = c.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.forget(c)
				defer slot.release()
				s.serve(c, slot)
			}()
		}
	}()
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening, ends every session and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	s.wg.Wait()
	s.catalog.close()
	return err
}

// forget drops a connection that has ended (accept made it known).
func (s *Server) forget(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	delete(s.byRemote, c.RemoteAddr().String())
}

// prefixConn replays bytes already read before the connection's own.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// serve runs one client connection from the first byte to the end.
func (s *Server) serve(raw net.Conn, slot *loginSlot) {
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(s.cfg.StartupTimeout))
	var conn net.Conn = raw
	var first [1]byte
	if _, err := io.ReadFull(raw, first[:]); err != nil {
		return
	}
	secure := false
	if first[0] == 0x16 { // a TLS ClientHello: direct TLS (sslnegotiation=direct)
		if s.cfg.TLS == nil {
			return
		}
		tc := tls.Server(&prefixConn{Conn: raw, pre: first[:]}, s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return
		}
		conn, secure = tc, true
	} else {
		conn = &prefixConn{Conn: raw, pre: first[:]}
	}
	var startup *pgproto3.StartupMessage
	for startup == nil {
		code, body, err := readStartup(conn)
		if err != nil {
			return
		}
		switch code {
		case sslRequestCode:
			if secure || s.cfg.TLS == nil {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return
				}
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return
			}
			tc := tls.Server(conn, s.cfg.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, secure = tc, true
		case gssEncCode:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return
			}
		case cancelCode:
			s.cancel(body)
			return
		default:
			if code>>16 != 3 {
				s.fatal(conn, "0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: toolgate speaks 3.0", code>>16, code&0xffff))
				return
			}
			var m pgproto3.StartupMessage
			full := binary.BigEndian.AppendUint32(nil, code)
			if err := m.Decode(append(full, body...)); err != nil {
				s.fatal(conn, "08P01", "invalid startup message")
				return
			}
			startup = &m
		}
	}
	if !secure && s.cfg.TLS != nil && !s.cfg.AllowPlaintext && !loopback(raw.LocalAddr().String()) {
		s.fatal(conn, "28000", "toolgate requires TLS on this listener (sslmode=require)")
		return
	}
	s.runSession(&session{srv: s, client: conn, remote: raw.RemoteAddr().String(), params: startup.Parameters,
		minor: startup.ProtocolVersion & 0xffff, tr: newTracker(), slot: slot}, raw)
}

// runSession runs a session, known to the server while it lasts.
func (s *Server) runSession(sess *session, raw net.Conn) {
	s.mu.Lock()
	s.live[sess] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.live, sess)
		s.mu.Unlock()
	}()
	sess.run(raw)
}

// fatal writes a FATAL ErrorResponse.
func (s *Server) fatal(w io.Writer, code, msg string) {
	b, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	_, _ = w.Write(b)
}

// cancel forwards a CancelRequest whose key toolgate handed out to the
// upstream server session it stands for. Unknown keys are ignored, as
// PostgreSQL does.
func (s *Server) cancel(body []byte) {
	if len(body) < 8 {
		return
	}
	key := cancelKey{pid: binary.BigEndian.Uint32(body[:4]), secret: binary.BigEndian.Uint32(body[4:8])}
	s.mu.Lock()
	t, ok := s.cancels[key]
	s.mu.Unlock()
	if !ok {
		return
	}
	c, err := net.DialTimeout(t.network, t.addr, 5*time.Second)
	if err != nil {
		s.log.Warn("cancel request could not reach the target", zap.Error(err))
		return
	}
	defer c.Close()
	b, _ := (&pgproto3.CancelRequest{ProcessID: t.pid, SecretKey: t.secret}).Encode(nil)
	_, _ = c.Write(b)
	// PostgreSQL answers a cancel request by closing the connection.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Read(make([]byte, 1))
}

func random32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// upstreamAddr is where cancel requests for the target go.
func upstreamAddr(cfg *pgconn.Config) (string, string) {
	if strings.HasPrefix(cfg.Host, "/") {
		return "unix", filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	}
	return "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}
