package pgwire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// session is one authenticated client connection and its upstream.
type session struct {
	srv    *Server
	client net.Conn
	remote string
	params map[string]string
	minor  uint32
	// slot is the connection's place under max_pending_logins.
	slot *loginSlot
	// raised holds the refusal messages toolgate raised on the server and
	// has not yet seen come back (client.go refusalSQL).
	raised sync.Map

	cr     broker.Credentials
	caller broker.Caller
	id     string
	lastID time.Time
	start  time.Time

	up  net.Conn
	upW *bufio.Writer
	cW  *bufio.Writer
	wmu sync.Mutex // guards cW

	// tr is the model of the server's statements and portals, fed by
	// both relays.
	tr *tracker
	// Client relay only: refusal is the refusal raised at the next Sync
	// of a refused extended-protocol batch ("" when none); barrier is set
	// after an Execute that may change session settings, until the Sync.
	refusal string
	barrier bool
	// binConv checks binary result requests (client relay only); rowConv
	// converts result cells (upstream relay only).
	binConv, rowConv *converter

	mu   sync.Mutex // guards held, closing, commits' gate and stats
	gate *sync.Cond
	// held is set while a simple query's results wait for its audit
	// records to be durable.
	held    bool
	closing bool
	// commits are the audit writes the current query's results wait for.
	commits []func(context.Context) error
	stats   broker.SessionStats

	// outcomes holds the outcomes of statements that ran, until the next
	// statement's record or the close record carries them, or until
	// foldWait passes without a statement and flushOutcomes records them
	// (guarded by mu, like flushT, ended and flushes' Add).
	outcomes []broker.StatementOutcome
	flushT   *time.Timer
	ended    bool
	flushes  sync.WaitGroup
}

// foldWait is how long an outcome waits for the session's next statement
// to carry it before it is recorded on its own.
const foldWait = 100 * time.Millisecond

// inflight is the audit side of an allowed Execute or Query: one record
// id per statement, in order, and the counts of the one running now.
type inflight struct {
	// caller is the caller the statements were decided for.
	caller broker.Caller
	ids    []string
	next   int
	start  time.Time
	rows   int
	bytes  int
	mask   int
}

func (s *session) log() *zap.Logger { return s.srv.log }

// run authenticates the client, connects upstream and relays until either
// side ends.
func (s *session) run(raw net.Conn) {
	ctx := context.Background()
	if !s.negotiate() {
		return
	}
	cR := bufio.NewReaderSize(s.client, 32<<10)
	s.cW = bufio.NewWriterSize(s.client, 32<<10)
	if err := s.authenticate(ctx, cR); err != nil {
		s.fatal("28P01", err)
		return
	}
	id, err := s.srv.pipe.OpenSession(ctx, broker.Session{Caller: s.caller, Door: Door, Target: s.srv.cfg.Target, Remote: s.remote,
		Detail: map[string]any{"application_name": s.params["application_name"]}})
	if err != nil {
		s.fatal("42501", err)
		return
	}
	s.id, s.start = id, time.Now()
	defer s.closeSession(ctx)
	if !s.admit() {
		return
	}
	defer s.srv.release(s.caller)
	// Logged in: max_conns_per_grant governs the session from here on.
	s.slot.release()
	hc, release, ok := s.connect(ctx)
	if !ok {
		return
	}
	defer release(nil)
	defer s.up.Close()
	key := s.srv.register(hc)
	defer s.srv.unregister(key)
	if !s.greet(hc, key) {
		return
	}
	_ = raw.SetDeadline(time.Time{})
	s.relay(ctx, cR)
}

// negotiate asks a client that wants a newer minor protocol version to
// fall back to 3.0, which toolgate speaks upstream.
func (s *session) negotiate() bool {
	if s.minor == 0 {
		return true
	}
	var unknown []string
	for k := range s.params {
		if strings.HasPrefix(k, "_pq_.") {
			unknown = append(unknown, k)
		}
	}
	b, _ := (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}).Encode(nil)
	_, err := s.client.Write(b)
	return err == nil
}

// closeSession records how the session ended.
func (s *session) closeSession(ctx context.Context) {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.Duration = time.Since(s.start)
	if st.Reason == "" {
		st.Reason = "client disconnected"
	}
	s.srv.pipe.CloseSession(context.WithoutCancel(ctx), s.id, s.caller, Door, s.srv.cfg.Target, st)
}

// admit refuses a session whose startup parameters toolgate cannot serve
// or whose grant already holds its share of connections.
func (s *session) admit() bool {
	if err := checkStartup(s.params); err != nil && !s.srv.lock1Off {
		s.setReason(safeMessage(err))
		s.fatal("22023", err)
		return false
	}
	if err := s.srv.admit(s.caller); err != nil {
		s.setReason("too many sessions")
		s.fatal("53300", err)
		return false
	}
	return true
}

// connect opens the upstream session as the session's login and checks
// the settings it reports; release must be called when the session ends.
func (s *session) connect(ctx context.Context) (hc *pgconn.HijackedConn, release func(error), ok bool) {
	hc, release, err := s.connectUpstream(ctx)
	if err != nil {
		s.log().Warn("target connection failed", zap.Error(err))
		err = upstreamError(err, s.srv.cfg.Target)
		s.fatal("08006", err)
		s.setReason("target unavailable")
		return nil, nil, false
	}
	s.up = hc.Conn
	for k, v := range hc.ParameterStatuses {
		s.tr.parameterStatus(k, v)
		if err := s.watchParam(k, v); err != nil {
			_ = s.up.Close()
			s.endForParam(err)
			release(nil)
			return nil, nil, false
		}
	}
	return hc, release, true
}

// greet finishes the client's startup with the server's parameters and
// toolgate's own cancel key.
func (s *session) greet(hc *pgconn.HijackedConn, key cancelKey) bool {
	buf, _ := (&pgproto3.AuthenticationOk{}).Encode(nil)
	for k, v := range hc.ParameterStatuses {
		buf, _ = (&pgproto3.ParameterStatus{Name: k, Value: v}).Encode(buf)
	}
	var secret [4]byte
	binary.BigEndian.PutUint32(secret[:], key.secret)
	buf, _ = (&pgproto3.BackendKeyData{ProcessID: key.pid, SecretKey: secret[:]}).Encode(buf)
	buf, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(buf)
	_, err := s.client.Write(buf)
	return err == nil
}

// relay runs both directions until either ends, then reports every
// statement still on its way.
func (s *session) relay(ctx context.Context, cR *bufio.Reader) {
	s.upW = bufio.NewWriterSize(s.up, 32<<10)
	s.gate = sync.NewCond(&s.mu)
	var relay sync.WaitGroup
	relay.Add(1)
	go func() {
		defer relay.Done()
		if err := s.relayUpstream(bufio.NewReaderSize(s.up, 64<<10)); err != nil && !isClosed(err) {
			s.log().Warn("upstream relay ended", zap.String("session", s.id), zap.Error(err))
			s.setReason("toolgate could not follow the server's answers")
			s.fatal("08P01", broker.Errorf(broker.CodeTargetError, "toolgate could not follow the server's answers and ended the session"))
		}
		s.tr.close()
		_ = s.client.Close()
	}()
	if err := s.relayClient(ctx, cR); err != nil && !isClosed(err) {
		s.log().Warn("client relay ended", zap.String("session", s.id), zap.Error(err))
		var m errMalformed
		if errors.As(err, &m) {
			_, _ = s.decide(ctx, []broker.Statement{protocolStatement(m.Error())}, false)
			s.setReason("protocol violation")
			s.fatal("08P01", broker.Errorf(broker.CodeInvalidRequest, "%s", m.Error()))
		}
	}
	s.mu.Lock()
	s.closing = true
	s.gate.Broadcast()
	s.mu.Unlock()
	s.tr.close()
	_ = s.up.Close()
	_ = s.client.Close()
	relay.Wait()
	for _, o := range s.tr.pending() {
		s.finishOp(o, errors.New("not completed: the session ended first"))
	}
	s.mu.Lock()
	s.ended = true
	s.stats.Done, s.outcomes = s.outcomes, nil // the close record carries them
	if s.flushT != nil {
		s.flushT.Stop()
	}
	s.mu.Unlock()
	s.flushes.Wait()
}

// outcome keeps the outcome of a statement that ran for the next record.
func (s *session) outcome(o broker.StatementOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes = append(s.outcomes, o)
	if len(s.outcomes) > 1 || s.ended {
		return
	}
	if s.flushT == nil {
		s.flushT = time.AfterFunc(foldWait, s.flushOutcomes)
	} else {
		s.flushT.Reset(foldWait)
	}
}

// takeOutcomes hands the kept outcomes to the record about to be written.
func (s *session) takeOutcomes() []broker.StatementOutcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.outcomes
	s.outcomes = nil
	return o
}

// flushOutcomes records the outcomes no statement came to carry.
func (s *session) flushOutcomes() {
	s.mu.Lock()
	if s.ended || len(s.outcomes) == 0 {
		s.mu.Unlock()
		return
	}
	outs := s.outcomes
	s.outcomes = nil
	s.flushes.Add(1)
	s.mu.Unlock()
	defer s.flushes.Done()
	for _, o := range outs {
		s.srv.pipe.StatementDone(context.Background(), o)
	}
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, errEOF) || strings.Contains(err.Error(), "use of closed network connection") ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset")
}

var errEOF = errors.New("EOF")

func (s *session) setReason(r string) {
	s.mu.Lock()
	if s.stats.Reason == "" {
		s.stats.Reason = r
	}
	s.mu.Unlock()
}

// fatal sends a FATAL error to the client with a safe message.
func (s *session) fatal(code string, err error) {
	e, _ := broker.AsError(err)
	msg := e.Message
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg, Detail: "toolgate code: " + string(e.Code)}).Encode(nil)
	if s.cW != nil {
		_, _ = s.cW.Write(b)
		_ = s.cW.Flush()
		return
	}
	_, _ = s.client.Write(b)
}

// authenticate asks for the password in clear (the token is stored only
// hashed, so SCRAM cannot verify it; the listener is TLS or loopback) and
// identifies the caller through the pipeline.
func (s *session) authenticate(ctx context.Context, r *bufio.Reader) error {
	b, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if _, err := s.client.Write(b); err != nil {
		return err
	}
	msg, err := readMessage(r, 64<<10, nil)
	if err != nil {
		return broker.Errorf(broker.CodeUnauthenticated, "expected a password message")
	}
	if msg[0] != 'p' {
		return broker.Errorf(broker.CodeUnauthenticated, "expected a password message, got %q", msg[0])
	}
	var pw pgproto3.PasswordMessage
	if err := pw.Decode(msg[5:]); err != nil {
		return broker.Errorf(broker.CodeUnauthenticated, "invalid password message")
	}
	user := s.params["user"]
	cr := broker.Credentials{Token: pw.Password}
	grant := strings.HasPrefix(user, "gr_")
	if !grant {
		graph, node, ok := strings.Cut(user, "/")
		if !ok || graph == "" || node == "" {
			return broker.Errorf(broker.CodeUnauthenticated, "user must be a grant id (gr_...) with its grant token as password, or graph/node with an API key as password")
		}
		cr.Claimed = broker.Context{Graph: graph, Node: strings.Trim(node, "/")}
	}
	if run := s.params["application_name"]; strings.HasPrefix(run, "toolgate-run:") {
		cr.Claimed.Run = strings.TrimPrefix(run, "toolgate-run:")
	}
	c, err := s.srv.pipe.Identify(ctx, cr)
	if err != nil {
		return err
	}
	if grant && (c.Binding == nil || c.Binding.GrantID != user) {
		return broker.Errorf(broker.CodeUnauthenticated, "the password is not the token of grant %s", user)
	}
	if c.Graph == "" || c.Node == "" {
		return broker.Errorf(broker.CodeForbidden, "the credential names no graph and node; connect as graph/node or with a grant")
	}
	s.cr, s.caller, s.lastID = cr, c, time.Now()
	return nil
}

// reidentify verifies the credential again when IdentifyEvery has passed,
// so a revoked or expired grant ends the session at its next statement.
func (s *session) reidentify(ctx context.Context) error {
	if time.Since(s.lastID) < s.srv.cfg.IdentifyEvery {
		return nil
	}
	c, err := s.srv.pipe.Identify(ctx, s.cr)
	if err != nil {
		return err
	}
	s.caller, s.lastID = c, time.Now()
	return nil
}

// connectUpstream logs in to the target as the session's login, once
// more when the server refused a provisioned role's login.
func (s *session) connectUpstream(ctx context.Context) (*pgconn.HijackedConn, func(error), error) {
	for try := 0; ; try++ {
		cfg := s.srv.up.Copy()
		release, err := s.login(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		hc, err := s.dial(ctx, cfg)
		if err == nil {
			return hc, release, nil
		}
		release(err)
		if try > 0 || !loginRefused(err) || s.srv.cfg.Login == nil {
			return nil, nil, err
		}
	}
}

func (s *session) dial(ctx context.Context, cfg *pgconn.Config) (*pgconn.HijackedConn, error) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range upstreamParams(s.params, s.srv.cfg) {
		cfg.RuntimeParams[k] = v
	}
	if v, ok := clientParam(s.params, "client_encoding"); ok && s.srv.lock1Off {
		cfg.RuntimeParams["client_encoding"] = v // lock 1 switched off: as asked
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// pgconn may still have a background read in progress on the socket;
	// it would take the server's next answer from the relay.
	if err := pc.SyncConn(ctx); err != nil {
		_ = pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		_ = pc.Close(ctx)
		return nil, err
	}
	return hc, nil
}

// fatalErr ends the session (revoked grant, audit store down).
type fatalErr struct{ err error }

func (f fatalErr) Error() string { return f.err.Error() }

func isFatal(err error) bool {
	var f fatalErr
	return errors.As(err, &f)
}

// decide sends statements through the pipeline; every one must be allowed.
// With overlap, a plain read's audit write may complete after the statement
// is sent upstream (its results wait for it); without, every record is
// durable before decide returns. Only a simple Query overlaps: in the
// extended protocol a client may pipeline more messages before Sync, and
// withholding results there could stall the server.
func (s *session) decide(ctx context.Context, sts []broker.Statement, overlap bool) ([]string, error) {
	if err := s.reidentify(ctx); err != nil {
		s.setReason("credential no longer valid")
		s.fatal("57P01", broker.Wrap(broker.CodeUnauthenticated, err, "terminating the session: "+safeMessage(err)))
		return nil, fatalErr{err}
	}
	ids := make([]string, 0, len(sts))
	for i, st := range sts {
		if st.Command == "COPY TO" && st.Unclassified == "" {
			st.Unclassified = s.copyMasked(ctx, st.Tables)
		}
		var done []broker.StatementOutcome
		if i == 0 {
			done = s.takeOutcomes()
		}
		d, commit, err := s.srv.pipe.StatementDeferred(ctx, broker.StatementCall{Caller: s.caller, Door: Door, Target: s.srv.cfg.Target, Session: s.id, Statement: st,
			Preview: s.previewHook(st), Done: done})
		s.mu.Lock()
		s.stats.Statements++
		if err != nil {
			s.stats.Denied++
		}
		s.mu.Unlock()
		if err != nil {
			if broker.CodeOf(err) == broker.CodeAuditUnavailable {
				s.setReason("audit store unavailable")
				s.fatal("57P01", err)
				return nil, fatalErr{err}
			}
			return nil, err
		}
		if commit != nil {
			if !overlap {
				if err := s.commit(ctx, commit); err != nil {
					return nil, err
				}
			} else {
				s.commits = append(s.commits, commit)
			}
		}
		ids = append(ids, d.ID)
	}
	return ids, nil
}

func (s *session) commit(ctx context.Context, c func(context.Context) error) error {
	if err := c(ctx); err != nil {
		s.setReason("audit store unavailable")
		s.fatal("57P01", err)
		return fatalErr{err}
	}
	return nil
}

// release sends what is buffered upstream, makes the pending audit records
// durable, then lets the held batch's results reach the client.
func (s *session) release(ctx context.Context) error {
	if len(s.commits) > 0 {
		if err := s.upW.Flush(); err != nil {
			return err
		}
		for _, c := range s.commits {
			if err := s.commit(ctx, c); err != nil {
				s.commits = s.commits[:0]
				return err
			}
		}
		s.commits = s.commits[:0]
	}
	s.mu.Lock()
	if s.held {
		s.held = false
		s.gate.Broadcast()
	}
	s.mu.Unlock()
	return nil
}

// wait blocks the upstream relay while a query's results wait for their
// audit records; it reports false when the session is closing.
func (s *session) wait() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.held && !s.closing {
		s.gate.Wait()
	}
	return !s.closing
}

// copyMasked explains why a COPY TO must be refused: its output bypasses
// cell masking, so it may not read a table with a masked column. "" means
// none of its tables has one.
func (s *session) copyMasked(ctx context.Context, tables []string) string {
	for _, t := range tables {
		keys, err := s.srv.catalog.tableColumns(ctx, t)
		if err != nil {
			return "COPY TO of " + t + " cannot be checked for masked columns"
		}
		for _, k := range keys {
			if _, ruled := s.srv.pipe.MaskCell(s.srv.cfg.Target, k, nil); ruled {
				return "COPY TO would bypass the masking of " + k + "; use SELECT"
			}
		}
	}
	return ""
}

func safeMessage(err error) string {
	e, _ := broker.AsError(err)
	return e.Message
}

// String helps debugging; it never includes the credential.
func (s *session) String() string {
	return fmt.Sprintf("session %s (%s/%s)", s.id, s.caller.Graph, s.caller.Node)
}
