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

// refusalHint marks the ErrorResponses toolgate raises upstream for a
// refused statement, so the relay can tidy them (no PL/pgSQL context).
const refusalHint = "toolgate refused this statement"

// session is one authenticated client connection and its upstream.
type session struct {
	srv    *Server
	client net.Conn
	remote string
	params map[string]string
	minor  uint32

	cr     broker.Credentials
	caller broker.Caller
	id     string
	lastID time.Time
	start  time.Time

	up  net.Conn
	upW *bufio.Writer
	cW  *bufio.Writer
	wmu sync.Mutex // guards cW

	// Extended protocol state (client goroutine only).
	stmts      map[string]*broker.Statement
	portals    map[string]*broker.Statement
	binds      map[string]bindInfo // portal -> how it was bound
	discard    bool
	discardWhy string
	sent       int // RFQ-producing messages sent upstream

	mu   sync.Mutex // guards inflight, injects, the gate and the counters below
	gate *sync.Cond
	// held is the batch whose results wait for its audit records to be
	// durable, 0 when none.
	held    int
	closing bool
	// commits are the audit writes the current batch's results wait for.
	commits []func(context.Context) error
	// expect lists, in order, the messages sent upstream whose answers
	// the relay must attribute: describes, executes, queries and syncs.
	expect   []expectation
	inflight []inflight
	injects  []int // batches whose refusal toolgate raises upstream
	stats    broker.SessionStats

	done chan broker.StatementOutcome
}

// bindInfo is what a Bind said about a portal.
type bindInfo struct {
	stmt      string
	formats   []int16
	described bool // a Describe of the portal followed the Bind
}

// expectation is a message sent upstream whose answer the relay must
// attribute (op: 'S'/'P' describe statement/portal, 'E' execute, 'Q'
// query, 'Y' sync).
type expectation struct {
	op   byte
	name string
	bind bindInfo
}

func (s *session) push(e expectation) {
	s.mu.Lock()
	s.expect = append(s.expect, e)
	s.mu.Unlock()
}

// inflight is an allowed statement whose result is on its way.
type inflight struct {
	id    string
	batch int
	start time.Time
	rows  int
	bytes int
	mask  int
}

func (s *session) log() *zap.Logger { return s.srv.log }

// run authenticates the client, connects upstream and relays until either
// side ends.
func (s *session) run(raw net.Conn) {
	ctx := context.Background()
	if s.minor != 0 {
		// Ask the client to fall back to 3.0; toolgate negotiates 3.0 upstream.
		var unknown []string
		for k := range s.params {
			if strings.HasPrefix(k, "_pq_.") {
				unknown = append(unknown, k)
			}
		}
		b, _ := (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}).Encode(nil)
		if _, err := s.client.Write(b); err != nil {
			return
		}
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
	defer func() {
		s.mu.Lock()
		st := s.stats
		s.mu.Unlock()
		st.Duration = time.Since(s.start)
		if st.Reason == "" {
			st.Reason = "client disconnected"
		}
		s.srv.pipe.CloseSession(context.WithoutCancel(ctx), s.id, s.caller, Door, s.srv.cfg.Target, st)
	}()
	hc, release, err := s.connectUpstream(ctx)
	if err != nil {
		s.log().Warn("target connection failed", zap.Error(err))
		err = upstreamError(err, s.srv.cfg.Target)
		s.fatal("08006", err)
		s.setReason("target unavailable")
		return
	}
	defer release(nil)
	s.up = hc.Conn
	defer s.up.Close()
	// The client gets toolgate's own cancel key, never the server's.
	key := cancelKey{pid: random32(), secret: random32()}
	network, addr := upstreamAddr(s.srv.up)
	s.srv.mu.Lock()
	s.srv.cancels[key] = cancelTarget{network: network, addr: addr, pid: hc.PID, secret: hc.SecretKey}
	s.srv.mu.Unlock()
	defer func() {
		s.srv.mu.Lock()
		delete(s.srv.cancels, key)
		s.srv.mu.Unlock()
	}()

	buf, _ := (&pgproto3.AuthenticationOk{}).Encode(nil)
	for k, v := range hc.ParameterStatuses {
		buf, _ = (&pgproto3.ParameterStatus{Name: k, Value: v}).Encode(buf)
	}
	var secret [4]byte
	binary.BigEndian.PutUint32(secret[:], key.secret)
	buf, _ = (&pgproto3.BackendKeyData{ProcessID: key.pid, SecretKey: secret[:]}).Encode(buf)
	buf, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(buf)
	if _, err := s.client.Write(buf); err != nil {
		return
	}
	_ = raw.SetDeadline(time.Time{})

	s.upW = bufio.NewWriterSize(s.up, 32<<10)
	s.stmts, s.portals, s.binds = map[string]*broker.Statement{}, map[string]*broker.Statement{}, map[string]bindInfo{}
	s.gate = sync.NewCond(&s.mu)
	s.done = make(chan broker.StatementOutcome, 256)
	recorded := make(chan struct{})
	go func() { // outcomes are recorded off the relay's path
		defer close(recorded)
		for o := range s.done {
			s.srv.pipe.StatementDone(ctx, o)
		}
	}()
	var relay sync.WaitGroup
	relay.Add(1)
	go func() {
		defer relay.Done()
		if err := s.relayUpstream(bufio.NewReaderSize(s.up, 64<<10)); err != nil && !isClosed(err) {
			s.log().Warn("upstream relay ended", zap.String("session", s.id), zap.Error(err))
		}
		_ = s.client.Close()
	}()
	if err := s.relayClient(ctx, cR); err != nil && !isClosed(err) {
		s.log().Warn("client relay ended", zap.String("session", s.id), zap.Error(err))
		var tl errTooLarge
		if errors.As(err, &tl) {
			s.setReason("message too large")
			s.fatal("54000", broker.Errorf(broker.CodePayloadTooLarge, "%s", tl.Error()))
		}
	}
	s.mu.Lock()
	s.closing = true
	s.gate.Broadcast()
	s.mu.Unlock()
	_ = s.up.Close()
	_ = s.client.Close()
	relay.Wait()
	close(s.done)
	<-recorded
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
	for _, k := range forwardedParams {
		for pk, v := range s.params {
			if strings.EqualFold(pk, k) {
				cfg.RuntimeParams[k] = v
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		_ = pc.Close(ctx)
		return nil, err
	}
	return hc, nil
}

// refuse answers a refused statement in protocol order: toolgate raises the
// refusal on the server itself (a DO block that raises SQLSTATE 42501), so
// the error arrives after every earlier result and aborts the server's
// transaction exactly as a real error would.
func refusalSQL(err error) string {
	e, _ := broker.AsError(err)
	msg := strings.ReplaceAll(e.Message, "$", "\uff04")
	detail := "toolgate code: " + string(e.Code)
	return "DO $tg$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = $m$" + msg + "$m$, DETAIL = $m$" + detail + "$m$, HINT = $m$" + refusalHint + "$m$; END$tg$"
}

// relayClient reads client messages, sends each statement through the
// pipeline and forwards what it allows.
func (s *session) relayClient(ctx context.Context, r *bufio.Reader) error {
	var buf []byte
	max := s.srv.cfg.MaxMessageBytes
	for {
		msg, err := readMessage(r, max, buf)
		if err != nil {
			return err
		}
		buf = msg
		if err := s.clientMessage(ctx, msg); err != nil {
			return err
		}
		if r.Buffered() == 0 {
			if err := s.upW.Flush(); err != nil {
				return err
			}
		}
	}
}

func (s *session) clientMessage(ctx context.Context, msg []byte) error {
	typ, body := msg[0], msg[5:]
	if s.discard && typ != 'S' {
		return nil
	}
	switch typ {
	case 'Q':
		var q pgproto3.Query
		if err := q.Decode(body); err != nil {
			return err
		}
		sts := s.srv.classify(q.String)
		ids, err := s.decide(ctx, sts, true)
		if err != nil {
			if isFatal(err) {
				return err
			}
			s.commits = s.commits[:0] // nothing of a refused query runs
			return s.sendRefusalQuery(err)
		}
		s.mu.Lock()
		s.sent++
		s.expect = append(s.expect, expectation{op: 'Q'})
		for _, id := range ids {
			s.inflight = append(s.inflight, inflight{id: id, batch: s.sent, start: time.Now()})
		}
		if len(s.commits) > 0 {
			s.held = s.sent
		}
		s.mu.Unlock()
		if _, err = s.upW.Write(msg); err != nil {
			return err
		}
		return s.release(ctx)
	case 'P':
		var p pgproto3.Parse
		if err := p.Decode(body); err != nil {
			return err
		}
		sts := s.srv.classify(p.Query)
		st := sts[0]
		if len(sts) > 1 {
			st = broker.Statement{Kind: broker.KindSQL, Text: p.Query, Unclassified: "a prepared statement may hold only one statement"}
		}
		if st.Unclassified != "" {
			// Refused through the pipeline, so the refusal is recorded.
			if _, err := s.decide(ctx, []broker.Statement{st}, false); err != nil {
				if isFatal(err) {
					return err
				}
				s.discard, s.discardWhy = true, refusalSQL(err)
				return nil
			}
		}
		s.stmts[p.Name] = &st
	case 'B':
		names, ok := cstrings(body, 2)
		if !ok {
			return errors.New("invalid Bind message")
		}
		s.portals[names[0]] = s.stmts[names[1]]
		var b pgproto3.Bind
		if err := b.Decode(body); err != nil {
			return err
		}
		s.binds[names[0]] = bindInfo{stmt: names[1], formats: b.ResultFormatCodes}
	case 'D':
		if len(body) < 2 {
			return errors.New("invalid Describe message")
		}
		names, ok := cstrings(body[1:], 1)
		if !ok {
			return errors.New("invalid Describe message")
		}
		if body[0] == 'P' {
			bi := s.binds[names[0]]
			bi.described = true
			s.binds[names[0]] = bi
		}
		s.push(expectation{op: body[0], name: names[0]})
	case 'E':
		names, ok := cstrings(body, 1)
		if !ok {
			return errors.New("invalid Execute message")
		}
		st := s.portals[names[0]]
		if st == nil {
			// A portal toolgate did not see parsed (e.g. from an SQL
			// PREPARE) is refused: nothing runs unclassified.
			st = &broker.Statement{Kind: broker.KindSQL, Unclassified: fmt.Sprintf("portal %q is not bound to a statement toolgate parsed", names[0])}
			if s.srv.lock1Off {
				st = &s.srv.classify("")[0]
			}
		}
		ids, err := s.decide(ctx, []broker.Statement{*st}, false)
		if err != nil {
			if isFatal(err) {
				return err
			}
			s.discard, s.discardWhy = true, refusalSQL(err)
			return nil
		}
		s.mu.Lock()
		s.inflight = append(s.inflight, inflight{id: ids[0], batch: s.sent + 1, start: time.Now()})
		s.expect = append(s.expect, expectation{op: 'E', name: names[0], bind: s.binds[names[0]]})
		s.mu.Unlock()
	case 'C':
		if len(body) > 1 {
			if names, ok := cstrings(body[1:], 1); ok {
				if body[0] == 'S' {
					delete(s.stmts, names[0])
				} else {
					delete(s.portals, names[0])
				}
			}
		}
	case 'S':
		if s.discard {
			s.discard = false
			return s.sendRefusalExtended(s.discardWhy)
		}
		s.mu.Lock()
		s.sent++
		s.expect = append(s.expect, expectation{op: 'Y'})
		s.mu.Unlock()
	case 'F':
		// The fastpath function call runs any function by OID: refused.
		err := broker.Errorf(broker.CodeForbidden, "the fastpath function call protocol is not allowed through toolgate; call the function in a SELECT")
		return s.sendRefusalQuery(err)
	case 'X':
		s.setReason("client terminated")
		return errEOF
	}
	_, err := s.upW.Write(msg)
	return err
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
	for _, st := range sts {
		if st.Command == "COPY TO" && st.Unclassified == "" {
			st.Unclassified = s.copyMasked(ctx, st.Tables)
		}
		d, commit, err := s.srv.pipe.StatementDeferred(ctx, broker.StatementCall{Caller: s.caller, Door: Door, Target: s.srv.cfg.Target, Session: s.id, Statement: st})
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
	if s.held != 0 {
		s.held = 0
		s.gate.Broadcast()
	}
	s.mu.Unlock()
	return nil
}

// wait blocks the upstream relay until batch may reach the client; it
// reports false when the session is closing.
func (s *session) wait(batch int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.held == batch && !s.closing {
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

func (s *session) sendRefusalQuery(err error) error {
	b, _ := (&pgproto3.Query{String: refusalSQL(err)}).Encode(nil)
	s.mu.Lock()
	s.sent++
	s.expect = append(s.expect, expectation{op: 'Q'})
	s.mu.Unlock()
	_, werr := s.upW.Write(b)
	return werr
}

// sendRefusalExtended ends a refused extended-protocol batch: the refusal
// is raised by an unnamed statement, whose ParseComplete and BindComplete
// the upstream relay swallows.
func (s *session) sendRefusalExtended(sql string) error {
	b, _ := (&pgproto3.Parse{Query: sql}).Encode(nil)
	b, _ = (&pgproto3.Bind{}).Encode(b)
	b, _ = (&pgproto3.Execute{}).Encode(b)
	b, _ = (&pgproto3.Sync{}).Encode(b)
	s.mu.Lock()
	s.sent++
	s.injects = append(s.injects, s.sent)
	s.expect = append(s.expect, expectation{op: 'Y'})
	s.mu.Unlock()
	// The unnamed statement and portal are now toolgate's.
	delete(s.stmts, "")
	delete(s.portals, "")
	_, err := s.upW.Write(b)
	return err
}

// String helps debugging; it never includes the credential.
func (s *session) String() string {
	return fmt.Sprintf("session %s (%s/%s)", s.id, s.caller.Graph, s.caller.Node)
}
