package pgwire

import (
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// tracker is the proxy's model of one session's extended query protocol
// as the server runs it (PostgreSQL docs, "Extended Query" and "Pipelining";
// postgres.c). It is fed by both directions: the client relay reports each
// message it forwards upstream, the upstream relay each answer. It knows
// nothing of policy: statements and executions carry opaque values (info,
// tag) that the proxy attaches.
//
// The model:
//   - stmts and portals are what the server holds, as far as its answers so
//     far show. A Parse takes effect on ParseComplete, a Bind on
//     BindComplete, a Close on CloseComplete; an error changes nothing,
//     except that a failed unnamed Parse has already dropped the old
//     unnamed statement (and a failed Bind is taken to have dropped the
//     portal: the server's transaction is then aborted or ends at Sync, so
//     no later Execute can use it).
//   - After an error in an extended-protocol message the server skips every
//     message, simple Query and Flush included, until Sync. Those messages
//     are resolved as skipped and change nothing.
//   - A simple Query drops the unnamed statement and portal. ReadyForQuery
//     with status 'I' ends the transaction and with it every portal.
//   - A statement that creates or drops statements or portals through SQL
//     (PREPARE, DEALLOCATE, DISCARD, DECLARE, CLOSE) taints the model: from
//     it on, every name is unknown until parsed or bound again.
//
// The client relay decides a message before the server has answered the
// ones sent before it. stmtFor and portalFor answer what the server will
// hold when it reaches the message: the effect of a message still
// unanswered in the same batch (no Sync between) is taken as done, which
// is exact because if it fails the server skips everything after it up to
// the Sync. A message of an earlier batch that still awaits its answer and
// touches the same name cannot be taken either way (a refused Parse keeps
// the old statement, and the next batch runs); the lookup then returns
// that message and the caller waits for its answer (await) before it
// decides. See doc.go.
type tracker struct {
	mu   sync.Mutex
	cond *sync.Cond

	stmts   map[string]*prepared
	portals map[string]*portal
	// queue holds the messages sent upstream whose answers are not all in,
	// oldest first.
	queue []*op
	// batch counts the Syncs the client sent: messages after the last
	// Sync belong to batch batch.
	batch int
	// failed is set when the server reported an error in the current
	// batch: it skips every message until the next Sync.
	failed bool
	// copyIn is set while a simple Query with COPY FROM STDIN may be
	// reading the client's data.
	copyIn bool
	params map[string]string
	tx     byte
	closed bool
}

// prepared is one prepared statement.
type prepared struct {
	name string
	sql  string
	info any
	// fields are the result columns from the server's Describe answer;
	// described says they arrived (nil fields then mean NoData).
	fields    []pgproto3.FieldDescription
	described bool
	// describing says a Describe of this statement was sent.
	describing bool
}

// portal is one portal: a bound statement.
type portal struct {
	name string
	stmt *prepared
	// formats are the result format codes the client asked for.
	formats   []int16
	fields    []pgproto3.FieldDescription
	described bool
	// describing says a Describe of this portal was sent.
	describing bool
}

type opKind uint8

const (
	opParse opKind = iota + 1
	opBind
	opDescribeStmt
	opDescribePortal
	opExecute
	opCloseStmt
	opClosePortal
	opSync
	opQuery
)

type opState uint8

const (
	opPending opState = iota
	opDone
	opFailed
	opSkipped
)

// op is one message sent upstream that the server answers.
type op struct {
	kind  opKind
	name  string
	batch int
	stmt  *prepared
	port  *portal
	// internal marks messages toolgate sent itself: their answers do not
	// reach the client.
	internal bool
	// taint marks a statement that may create or drop statements or
	// portals through SQL.
	taint bool
	// copyFrom marks a Query that may enter COPY FROM STDIN.
	copyFrom bool
	// tag is what the proxy attached to an Execute or Query.
	tag   any
	state opState
}

func newTracker() *tracker {
	t := &tracker{stmts: map[string]*prepared{}, portals: map[string]*portal{}, params: map[string]string{}, tx: 'I'}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// --- the client side -------------------------------------------------

// enqueue adds o unless the server is known to skip it; it reports whether
// it did. t.mu is held.
func (t *tracker) enqueue(o *op) bool {
	if t.failed && o.kind != opSync {
		return false
	}
	o.batch = t.batch
	t.queue = append(t.queue, o)
	return true
}

// skipping reports whether the server is known to skip every message
// until the client's next Sync.
func (t *tracker) skipping() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// parse records a Parse sent upstream and returns the statement it will
// create, nil when the server skips it.
func (t *tracker) parse(name, sql string, info any, internal bool) *prepared {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &prepared{name: name, sql: sql, info: info}
	if !t.enqueue(&op{kind: opParse, name: name, stmt: st, internal: internal}) {
		return nil
	}
	return st
}

// stmtFor returns the statement a message sent now that names it will
// find, nil when there is none or it is unknown. A non-nil op is an
// unanswered message of an earlier batch that decides it: await it and
// ask again.
func (t *tracker) stmtFor(name string) (*prepared, *op) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, wait := t.decider(func(o *op) bool {
		return (o.kind == opParse || o.kind == opCloseStmt) && o.name == name || o.kind == opQuery && name == ""
	})
	switch {
	case wait != nil:
		return nil, wait
	case o == nil:
		return t.stmts[name], nil
	case o.kind == opParse:
		return o.stmt, nil
	}
	return nil, nil
}

// portalFor is stmtFor for portals.
func (t *tracker) portalFor(name string) (*portal, *op) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, wait := t.decider(func(o *op) bool {
		return (o.kind == opBind || o.kind == opClosePortal) && o.name == name || o.kind == opQuery && name == ""
	})
	switch {
	case wait != nil:
		return nil, wait
	case o == nil:
		return t.portals[name], nil
	case o.kind == opBind:
		return o.port, nil
	}
	return nil, nil
}

// decider finds the last unanswered message that touches a name (or
// taints every name): in the current batch it decides (nil when none);
// in an earlier one it is returned as wait. t.mu is held.
func (t *tracker) decider(touches func(*op) bool) (o, wait *op) {
	for i := len(t.queue) - 1; i >= 0; i-- {
		o := t.queue[i]
		if !o.taint && !touches(o) {
			continue
		}
		if o.batch < t.batch {
			return nil, o
		}
		return o, nil
	}
	return nil, nil
}

// bind records a Bind of st (from stmtFor) into a portal and returns the
// portal, nil when the server skips it.
func (t *tracker) bind(name string, st *prepared, formats []int16, internal bool) *portal {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := &portal{name: name, stmt: st, formats: formats}
	if !t.enqueue(&op{kind: opBind, name: name, port: p, stmt: st, internal: internal}) {
		return nil
	}
	return p
}

// describeStmt records a Describe of st (from stmtFor; nil when unknown);
// it reports false when the server skips it.
func (t *tracker) describeStmt(name string, st *prepared, internal bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.enqueue(&op{kind: opDescribeStmt, name: name, stmt: st, internal: internal}) {
		return false
	}
	if st != nil {
		st.describing = true
	}
	return true
}

// describePortal records a Describe of p (from portalFor; nil when
// unknown).
func (t *tracker) describePortal(name string, p *portal, internal bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.enqueue(&op{kind: opDescribePortal, name: name, port: p, internal: internal}) {
		return false
	}
	if p != nil {
		p.describing = true
	}
	return true
}

// describedFields returns st's result columns once a Describe answered.
func (t *tracker) describedFields(st *prepared) ([]pgproto3.FieldDescription, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return st.fields, st.described
}

// isDescribing reports whether a Describe of st was sent.
func (t *tracker) isDescribing(st *prepared) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return st.describing
}

// awaitDescribed waits until no Describe of st is pending; false means
// the tracker was closed.
func (t *tracker) awaitDescribed(st *prepared) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for !st.described && !t.closed && t.describeQueued(st) {
		t.cond.Wait()
	}
	return !t.closed
}

func (t *tracker) describeQueued(st *prepared) bool {
	for _, o := range t.queue {
		if o.kind == opDescribeStmt && o.stmt == st {
			return true
		}
	}
	return false
}

// needsDescribe reports whether neither p nor its statement has been or
// is being described, so the proxy must ask the server for p's columns.
func (t *tracker) needsDescribe(p *portal) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !p.describing && !(p.stmt != nil && p.stmt.describing)
}

// execute records an Execute of p (from portalFor); it returns the op,
// nil when the server skips it.
func (t *tracker) execute(p *portal, tag any, internal, taint bool) *op {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := &op{kind: opExecute, name: p.name, port: p, stmt: p.stmt, tag: tag, internal: internal, taint: taint}
	if !t.enqueue(o) {
		return nil
	}
	return o
}

// closeStmt and closePortal record a Close.
func (t *tracker) closeStmt(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.enqueue(&op{kind: opCloseStmt, name: name})
}

func (t *tracker) closePortal(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.enqueue(&op{kind: opClosePortal, name: name})
}

// sync records a Sync: the batch ends and the skipping with it.
func (t *tracker) sync() *op {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := &op{kind: opSync}
	t.enqueue(o)
	t.batch++
	t.failed = false
	return o
}

// query records a simple Query; nil when the server skips it.
func (t *tracker) query(tag any, taint, copyFrom bool) *op {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := &op{kind: opQuery, tag: tag, taint: taint, copyFrom: copyFrom}
	if !t.enqueue(o) {
		return nil
	}
	if copyFrom {
		t.copyIn = true
	}
	return o
}

// copying reports whether a COPY FROM STDIN may be reading client data.
func (t *tracker) copying() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.copyIn
}

// copyEnded records the client's CopyDone or CopyFail.
func (t *tracker) copyEnded() {
	t.mu.Lock()
	t.copyIn = false
	t.mu.Unlock()
}

// await blocks until o is resolved; false means the tracker was closed.
func (t *tracker) await(o *op) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for o.state == opPending && !t.closed {
		t.cond.Wait()
	}
	return !t.closed
}

// awaitIdle blocks until every message sent has been answered.
func (t *tracker) awaitIdle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.queue) > 0 && !t.closed {
		t.cond.Wait()
	}
	return !t.closed
}

// close wakes every waiter for good.
func (t *tracker) close() {
	t.mu.Lock()
	t.closed = true
	t.cond.Broadcast()
	t.mu.Unlock()
}

// pending returns the ops still awaiting answers, for a session that ends.
func (t *tracker) pending() []*op {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*op(nil), t.queue...)
}

// --- the server side -------------------------------------------------

// step is what one server message meant.
type step struct {
	// op is the message it answers; nil for asynchronous messages.
	op *op
	// internal is set when it answers a message toolgate sent itself.
	internal bool
	// done lists the ops it resolved, in order.
	done []*op
}

// errProtocol is an answer the model cannot place: the session must end.
type errProtocol struct{ what string }

func (e errProtocol) Error() string { return "unexpected " + e.what + " from the server" }

func (t *tracker) head() *op {
	if len(t.queue) == 0 {
		return nil
	}
	return t.queue[0]
}

// pop resolves the head op; t.mu is held. A Describe that did not run
// leaves its target undescribed, to be asked again.
func (t *tracker) pop(state opState) *op {
	o := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	o.state = state
	if state != opDone {
		switch {
		case o.kind == opDescribeStmt && o.stmt != nil:
			o.stmt.describing = o.stmt.described
		case o.kind == opDescribePortal && o.port != nil:
			o.port.describing = o.port.described
		}
	}
	t.cond.Broadcast()
	return o
}

// expect pops the head op when it is of one of kinds.
func (t *tracker) expect(what string, kinds ...opKind) (*op, error) {
	h := t.head()
	if h != nil {
		for _, k := range kinds {
			if h.kind == k {
				return h, nil
			}
		}
	}
	return nil, errProtocol{what}
}

// complete applies ParseComplete ('1'), BindComplete ('2') or
// CloseComplete ('3').
func (t *tracker) complete(typ byte) (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var kinds []opKind
	switch typ {
	case '1':
		kinds = []opKind{opParse}
	case '2':
		kinds = []opKind{opBind}
	default:
		kinds = []opKind{opCloseStmt, opClosePortal}
	}
	h, err := t.expect(fmt.Sprintf("message %q", typ), kinds...)
	if err != nil {
		return step{}, err
	}
	switch h.kind {
	case opParse:
		t.stmts[h.name] = h.stmt
	case opBind:
		t.portals[h.name] = h.port
	case opCloseStmt:
		delete(t.stmts, h.name)
	case opClosePortal:
		delete(t.portals, h.name)
	}
	t.pop(opDone)
	return step{op: h, internal: h.internal, done: []*op{h}}, nil
}

// paramDescription applies a ParameterDescription, the first half of the
// answer to a Describe of a statement.
func (t *tracker) paramDescription() (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.expect("ParameterDescription", opDescribeStmt)
	if err != nil {
		return step{}, err
	}
	return step{op: h, internal: h.internal}, nil
}

// rowDescription applies a RowDescription: the end of a Describe's answer,
// or the start of a simple query's result.
func (t *tracker) rowDescription(fields []pgproto3.FieldDescription) (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.expect("RowDescription", opDescribeStmt, opDescribePortal, opQuery)
	if err != nil {
		return step{}, err
	}
	if h.kind == opQuery {
		return step{op: h}, nil
	}
	t.described(h, fields)
	t.pop(opDone)
	return step{op: h, internal: h.internal, done: []*op{h}}, nil
}

// described stores a copy of a Describe's answer on what it described.
func (t *tracker) described(h *op, fields []pgproto3.FieldDescription) {
	switch {
	case h.kind == opDescribeStmt && h.stmt != nil:
		h.stmt.fields, h.stmt.described = copyFields(fields), true
	case h.kind == opDescribePortal && h.port != nil:
		h.port.fields, h.port.described = copyFields(fields), true
	}
}

// copyFields copies fields out of a message buffer that will be reused.
func copyFields(in []pgproto3.FieldDescription) []pgproto3.FieldDescription {
	if in == nil {
		return nil
	}
	out := make([]pgproto3.FieldDescription, len(in))
	for i, f := range in {
		out[i] = f
		out[i].Name = append([]byte(nil), f.Name...)
	}
	return out
}

// noData applies NoData, the answer to a Describe of something that
// returns no rows.
func (t *tracker) noData() (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.expect("NoData", opDescribeStmt, opDescribePortal)
	if err != nil {
		return step{}, err
	}
	t.described(h, nil)
	t.pop(opDone)
	return step{op: h, internal: h.internal, done: []*op{h}}, nil
}

// result places a DataRow, a COPY message or a notice of the running
// Execute or Query.
func (t *tracker) result(what string) (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.expect(what, opExecute, opQuery)
	if err != nil {
		return step{}, err
	}
	return step{op: h, internal: h.internal}, nil
}

// copyInResponse applies CopyInResponse: only a simple Query may start
// COPY FROM STDIN through toolgate.
func (t *tracker) copyInResponse() (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.head()
	if h == nil || h.kind != opQuery || !h.copyFrom {
		return step{}, errProtocol{"CopyInResponse"}
	}
	return step{op: h}, nil
}

// commandDone applies CommandComplete, EmptyQueryResponse or
// PortalSuspended: an Execute is answered; one statement of a Query is.
func (t *tracker) commandDone() (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.expect("CommandComplete", opExecute, opQuery)
	if err != nil {
		return step{}, err
	}
	if h.kind == opQuery {
		return step{op: h}, nil
	}
	t.untaint(h)
	t.pop(opDone)
	return step{op: h, internal: h.internal, done: []*op{h}}, nil
}

// untaint forgets every statement and portal after a statement that may
// have changed them through SQL.
func (t *tracker) untaint(h *op) {
	if h.taint {
		t.stmts, t.portals = map[string]*prepared{}, map[string]*portal{}
	}
}

// errorResponse applies an ErrorResponse. An error in an extended-protocol
// message makes the server skip every message up to the next Sync.
func (t *tracker) errorResponse() step {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.head()
	if h == nil {
		return step{} // a FATAL the server sends on its own
	}
	switch h.kind {
	case opSync:
		return step{op: h} // the commit at Sync failed; ReadyForQuery follows
	case opQuery:
		t.untaint(h)
		h.state = opFailed // stays queued until its ReadyForQuery
		return step{op: h}
	}
	t.failedOp(h)
	done := []*op{t.pop(opFailed)}
	for len(t.queue) > 0 && t.queue[0].kind != opSync {
		done = append(done, t.pop(opSkipped))
	}
	if h.batch == t.batch {
		t.failed = true
	}
	return step{op: h, internal: h.internal, done: done}
}

// failedOp applies what a failed message still did.
func (t *tracker) failedOp(h *op) {
	switch h.kind {
	case opParse:
		if h.name == "" {
			delete(t.stmts, "") // dropped before the new one was parsed
		}
	case opBind:
		delete(t.portals, h.name)
	case opExecute:
		t.untaint(h)
	}
}

// readyForQuery applies ReadyForQuery, the answer to a Sync or a Query.
func (t *tracker) readyForQuery(status byte) (step, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.expect("ReadyForQuery", opSync, opQuery)
	if err != nil {
		return step{}, err
	}
	state := opDone
	if h.kind == opQuery {
		t.untaint(h)
		delete(t.stmts, "")
		delete(t.portals, "")
		if h.copyFrom {
			t.copyIn = false
		}
		if h.state == opFailed {
			state = opFailed
		}
	}
	t.tx = status
	if status == 'I' {
		clear(t.portals)
	}
	t.pop(state)
	return step{op: h, done: []*op{h}}, nil
}

// parameterStatus records a ParameterStatus.
func (t *tracker) parameterStatus(name, value string) {
	t.mu.Lock()
	t.params[name] = value
	t.mu.Unlock()
}

// param returns the last reported value of a server parameter.
func (t *tracker) param(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.params[name]
}

// statements returns the named statements the server holds: name to SQL.
func (t *tracker) statements() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for n, st := range t.stmts {
		if n != "" {
			out[n] = st.sql
		}
	}
	return out
}

// portalNames returns the named portals the server holds: name to the SQL
// of their statement.
func (t *tracker) portalNames() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for n, p := range t.portals {
		if n != "" && p.stmt != nil {
			out[n] = p.stmt.sql
		}
	}
	return out
}
