package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The gate (DESIGN §1). Every tool call, passthrough statement and HTTP
// passthrough request passes these steps, in this order, each a function
// in this file. A refusal at any step carries a stable code, runs nothing,
// and is recorded by finish (finish.go):
//
//	begin       the passage starts on the live snapshot, with its audit event
//	identified  the caller came from Identify (broker.go)   unauthenticated
//	resolve     the caller names a graph and node policy     unidentified,
//	            declares (looked up once); the tool exists   unknown_graph,
//	            and that node may see it                     unknown_node,
//	                                                         unknown_tool, forbidden
//	arguments   decoded, bound from the grant scope, hashed, invalid_arguments,
//	            masked for the record, validated            payload_too_large, forbidden
//	decided     policy's answer; deny refuses               forbidden, budget_exceeded
//	approve     an approve decision waits for a human       approval_*, forbidden
//
// Tool calls take every step (Call, call.go), then execute and mask.
// Passthrough statements take identified, mayConnect, decided and approve
// (passthrough.go): their tool is the synthetic "pg:<target>" or
// "http:<target>", their argument the statement itself.

// passKind is what passes the gate: a tool call, a passthrough statement or
// session. It holds what differs between them, so each step is written
// once.
type passKind struct {
	event    EventKind
	idPrefix string
	// noun names the passage in refusals: "call", "statement".
	noun string
	// failStatus is the recorded status of a passage that ended in an
	// error no step classified.
	failStatus Status
	// timed passages record how long they took.
	timed bool
	// withheld ends "the audit store is unavailable, so ...".
	withheld string
	// subject names what waits for approval (a tool's name is given), and
	// it refers to the passage once named.
	subject func(name string) string
	it      string
	// notRun says in approval refusals that nothing happened, and again
	// how to ask anew.
	notRun, again string
	// replays: a consumed approval answers the recorded result of the run
	// it was used for (tool calls). Otherwise it is refused: a statement
	// runs once per approval.
	replays bool
	// held answers a passage whose approval is pending.
	held func(name string, out ApprovalOutcome) (Result, error)
}

// The passage kinds.
var (
	toolCall = passKind{event: EventToolCall, idPrefix: "call", noun: "call", failStatus: StatusError, timed: true,
		withheld: "the call's result is withheld", subject: func(name string) string { return fmt.Sprintf("tool %q", name) }, it: "the call",
		notRun: "the action was not performed", again: "Call again", replays: true, held: pendingResult}
	statementCall = passKind{event: EventStatement, idPrefix: "stm", noun: "statement", failStatus: StatusDenied, timed: true,
		withheld: "the statement is refused", subject: func(string) string { return "this statement" }, it: "it",
		notRun: "the statement was not run", again: "Send it again", held: pendingRefusal}
	sessionOpen = passKind{event: EventSessionOpened, idPrefix: "ses", noun: "session", failStatus: StatusDenied,
		withheld: "the passthrough session is refused"}
)

// passage is one call, statement or session on its way through the gate:
// the snapshot it is served from, who is calling, the caller's node (once
// resolved) and the audit event being filled in.
type passage struct {
	snap   *Snapshot
	kind   *passKind
	caller Caller
	node   Node
	start  time.Time
	ev     Event
	// claimed is set when this passage claimed an approval and runs on it.
	claimed bool
	// expect is what the run on a claimed approval must match: the count
	// of the request's preview. nil runs unmatched.
	expect *Expectation
}

// begin starts a passage on the live snapshot.
func (b *Broker) begin(k *passKind, c Caller, door string) *passage {
	now := b.now()
	return &passage{snap: b.live.Load(), kind: k, caller: c, start: now,
		ev: Event{ID: newID(k.idPrefix, now), Time: now, Kind: k.event, Door: door}}
}

// identified refuses a caller that did not come from Identify, and writes
// who is calling into the event.
func (p *passage) identified() error {
	if !p.caller.verified {
		p.ev.Status = StatusDenied
		return Errorf(CodeUnauthenticated, "caller was not identified")
	}
	fillCaller(&p.ev, p.caller)
	return nil
}

func fillCaller(ev *Event, c Caller) {
	ev.Principal, ev.AuthMethod, ev.TokenID = c.Principal.Subject, string(c.Principal.Method), c.Principal.TokenID
	ev.Graph, ev.Node, ev.Run, ev.Thread, ev.ToolCallID = c.Graph, c.Node, c.Run, c.Thread, c.ToolCallID
}

// resolve finds the caller's node policy (the one node lookup of the
// call) and the tool. A caller that names no graph or node, or one policy
// does not declare, is refused first (callerNode). A tool the caller may
// not see is reported as unknown only when it does not exist at all;
// otherwise the refusal says it is forbidden.
func (p *passage) resolve(name string) (*prepared, error) {
	n, err := p.snap.callerNode(p.caller)
	if err != nil {
		p.ev.Status = StatusDenied
		return nil, err
	}
	p.node = n
	pt, ok := p.snap.tools[name]
	if !ok {
		p.ev.Status = StatusDenied
		if w, held := p.snap.withheld[name]; held {
			return nil, p.withheld(w)
		}
		return nil, Errorf(CodeUnknownTool, "no tool named %q", name)
	}
	p.ev.Target = pt.tool.Target
	if !p.snap.live.Policy.Visible(p.node, pt.tool) {
		p.ev.Status = StatusDenied
		return nil, p.forbidden(name)
	}
	return pt, nil
}

// withheld refuses a call to a withheld tool: as forbidden when the
// caller's node may not call it (policy cannot say so: forbidden), else
// with the tool's own refusal.
func (p *passage) withheld(w Withheld) error {
	p.ev.Target = w.Target
	if p.snap.allows == nil || !p.snap.allows.Allows(p.node, w.Name) {
		return p.forbidden(w.Name)
	}
	if w.Refusal.Code == CodeTargetUnavailable {
		p.ev.Status = StatusError // the target failed, not policy
	}
	return &Error{Code: w.Refusal.Code, Message: w.Refusal.Message}
}

// forbidden is default deny: the caller's node may not call the tool.
func (p *passage) forbidden(name string) error {
	p.ev.Decision, p.ev.Rule = string(EffectDeny), "default"
	return Errorf(CodeForbidden, "node %q of graph %q may not call tool %q", p.caller.Node, p.caller.Graph, name)
}

// callerNode resolves the caller's node policy for a tool call, a listing
// or a passthrough connection. An API key or OIDC caller must name its
// graph and node (X-Toolgate-Graph, X-Toolgate-Node; a grant token carries
// both): without them it is unidentified, naming each missing header. A
// graph or node policy does not declare is refused naming it, never
// answered with an empty tool list.
func (s *Snapshot) callerNode(c Caller) (Node, error) {
	if c.Graph == "" || c.Node == "" {
		return nil, unidentified(c.Context)
	}
	if n := s.live.Policy.Node(c); n != nil {
		return n, nil
	}
	if s.graphs == nil {
		return nil, &Error{Code: CodeUnknownNode, Field: HeaderNode, Message: fmt.Sprintf("graph %q has no node %q, or the graph is not declared", c.Graph, c.Node)}
	}
	if !s.graphs.HasGraph(c.Graph) {
		return nil, unknownGraph(c.Graph)
	}
	return nil, &Error{Code: CodeUnknownNode, Field: HeaderNode, Message: fmt.Sprintf(
		"graph %q has no node %q (it declares %s): %s must be the path of a node under graphs.%s.nodes",
		c.Graph, c.Node, quoteList(s.graphs.NodeKeys(c.Graph), 10), HeaderNode, c.Graph)}
}

// unidentified refuses a caller whose context lacks its graph or node,
// naming every missing header.
func unidentified(claimed Context) *Error {
	var missing []Problem
	for _, h := range []struct{ header, value, what string }{
		{HeaderGraph, claimed.Graph, "the LangGraph graph making the call"},
		{HeaderNode, claimed.Node, "the path of the graph node making the call"},
	} {
		if h.value == "" {
			missing = append(missing, Problem{Field: h.header, Message: fmt.Sprintf("%s is missing: it names %s", h.header, h.what)})
		}
	}
	names := missing[0].Field
	if len(missing) > 1 {
		names += " and " + missing[1].Field
	}
	return &Error{Code: CodeUnidentified, Field: missing[0].Field, Problems: missing, Message: fmt.Sprintf(
		"the request does not say which graph and node it acts for: send %s (set by the graph runtime, e.g. the toolgate_langgraph helpers), or use a grant token, which carries both", names)}
}

// unknownGraph refuses a graph the configuration does not declare.
func unknownGraph(graph string) *Error {
	return &Error{Code: CodeUnknownGraph, Field: HeaderGraph, Message: fmt.Sprintf(
		"no graph %q is declared: %s must name a graph under graphs in toolgate.yaml", graph, HeaderGraph)}
}

// quoteList quotes up to max names, saying how many more there are.
func quoteList(names []string, max int) string {
	if len(names) == 0 {
		return "no nodes"
	}
	out := make([]string, 0, min(len(names), max)+1)
	for _, n := range names[:min(len(names), max)] {
		out = append(out, strconv.Quote(n))
	}
	if len(names) > max {
		out = append(out, fmt.Sprintf("and %d more", len(names)-max))
	}
	return strings.Join(out, ", ")
}

// arguments decodes the call's arguments, forces those the caller's node
// binds from its grant scope, hashes and masks them for the record, and
// validates them against the tool's input schema.
func (b *Broker) arguments(p *passage, t *Tool, raw json.RawMessage) (map[string]any, error) {
	args, err := decodeArgs(raw, b.cfg.MaxArgsBytes, b.cfg.MaxArgsDepth)
	if err == nil {
		err = p.bind(t, args)
	}
	if err != nil {
		p.ev.Status = StatusDenied
		return nil, err
	}
	canonical, _ := json.Marshal(args) // map keys sort: canonical for our purposes
	p.hashArgs(canonical)
	if p.ev.Args, err = p.snap.live.Masker.MaskRecord(canonical); err != nil {
		return nil, Wrap(CodeInternal, err, "the arguments could not be masked for the audit record, so the call is refused")
	}
	if err := t.Spec.ValidateArgs(args); err != nil {
		p.ev.Status = StatusDenied
		return nil, err
	}
	return args, nil
}

// bind sets the arguments the caller's node binds from the grant scope,
// refusing a call that sets one to another value.
func (p *passage) bind(t *Tool, args map[string]any) error {
	if p.snap.binder == nil {
		return nil
	}
	bound, err := p.snap.binder.Bound(p.node, p.caller, t)
	if err != nil {
		return err
	}
	for name, v := range bound {
		if given, ok := args[name]; ok && !sameJSON(given, v) {
			return &Error{Code: CodeForbidden, Field: name, Message: fmt.Sprintf("argument %q is bound to the grant scope and may not be set to another value", name)}
		}
		args[name] = v
	}
	return nil
}

// hashArgs records the SHA-256 of the passage's canonical arguments, which
// binds an approval to exactly these arguments.
func (p *passage) hashArgs(canonical []byte) {
	sum := sha256.Sum256(canonical)
	p.ev.ArgsHash = hex.EncodeToString(sum[:])
}

// decided writes policy's answer into the event. Policy that could not
// answer refuses (fail closed), as does a deny, with the deciding rule and
// denial (what policy denies, e.g. `tool "x" for node "n"`); allow and
// approve go on.
func (p *passage) decided(dec Decision, err error, denial string) error {
	if err != nil {
		p.ev.Status = StatusDenied
		if CodeOf(err) == CodeInternal {
			return Wrap(CodeForbidden, err, "policy could not decide this "+p.kind.noun+", so it is refused")
		}
		return err
	}
	p.ev.Decision, p.ev.Rule, p.ev.PolicyVersion = string(dec.Effect), dec.Rule, dec.PolicyVersion
	if dec.Effect == EffectAllow || dec.Effect == EffectApprove {
		return nil
	}
	p.ev.Status = StatusDenied
	msg := fmt.Sprintf("policy %s denies %s", dec.Rule, denial)
	if dec.Reason != "" {
		msg += ": " + dec.Reason
	}
	return Errorf(CodeForbidden, "%s", p.snap.live.Masker.MaskText(msg))
}

// approve holds an approve decision at the approval gate for req.Tool. run
// is true only when this
// passage claimed the approval and must run now; otherwise the passage ends
// here with answer (the recorded result a consumed approval replays, or
// the pending notice) or a refusal.
func (b *Broker) approve(ctx context.Context, p *passage, req ApprovalRequest) (answer Result, run bool, err error) {
	k := p.kind
	if b.cfg.Approvals == nil {
		p.ev.Status = StatusDenied
		return Result{}, false, Errorf(CodeForbidden, "%s needs approval (%s) but no approval channel is configured, so %s is refused", k.subject(req.Tool.Name), req.Decision.Rule, k.it)
	}
	out, err := b.cfg.Approvals.Await(ctx, req)
	if err != nil {
		p.ev.Status = StatusDenied
		return Result{}, false, err
	}
	p.ev.ApprovalID = out.ID
	switch out.Status {
	case ApprovalApproved:
		p.claimed = true
		return Result{}, true, p.matchPreview(out)
	case ApprovalConsumed:
		if k.replays {
			p.ev.Status, p.ev.Bytes = StatusOK, len(out.Result)
			return Result{Value: out.Result}, false, nil
		}
		p.ev.Status = StatusDenied
		return Result{}, false, Errorf(CodeApprovalDenied, "approval %s was already used by an earlier run of this %s; it runs once per approval. Send the %s again to request a new approval", out.ID, k.noun, k.noun)
	case ApprovalPending:
		p.ev.Status = StatusPending
		answer, err := k.held(req.Tool.Name, out)
		return answer, false, err
	case ApprovalExpired:
		p.ev.Status = StatusDenied
		return Result{}, false, Errorf(CodeApprovalExpired, "approval %s expired before a decision; %s", out.ID, k.notRun)
	case ApprovalStale:
		p.ev.Status = StatusDenied
		return Result{}, false, Errorf(CodeApprovalStale, "approval %s no longer counts because its rule changed; %s. %s to request a new approval", out.ID, k.notRun, k.again)
	default:
		p.ev.Status = StatusDenied
		msg := fmt.Sprintf("approval %s was %s; %s", out.ID, out.Status, k.notRun)
		if out.Reason != "" {
			msg += ": " + out.Reason
		}
		return Result{}, false, &Error{Code: CodeApprovalDenied, Message: p.snap.live.Masker.MaskText(msg)}
	}
}

// matchPreview makes the run on a claimed approval match the preview its
// approvers saw: the stored preview must be the one its hash was taken
// over (else nothing runs), and its row count is what the run must change.
func (p *passage) matchPreview(out ApprovalOutcome) error {
	if out.Preview == nil {
		return nil
	}
	if !out.Preview.Intact() {
		p.ev.Status = StatusDenied
		return Errorf(CodeInternal, "the stored preview of approval %s does not match its hash, so %s is refused", out.ID, p.kind.it)
	}
	if want, ok := out.Preview.Expectation(); ok {
		p.expect = &want
		if p.ev.Detail == nil {
			p.ev.Detail = map[string]any{}
		}
		p.ev.Detail["preview_rows"], p.ev.Detail["preview_hash"] = want.RowsAffected, out.Preview.Hash
	}
	return nil
}

// pendingResult answers a tool call whose approval is pending: not an
// error, a notice that says plainly the action was NOT performed.
func pendingResult(tool string, out ApprovalOutcome) (Result, error) {
	return Result{Pending: &Pending{
		Status:     string(CodeApprovalPending),
		ApprovalID: out.ID,
		ExpiresAt:  out.ExpiresAt,
		Message:    fmt.Sprintf("The action was NOT performed: tool %s is waiting for approval %s (until %s). Call again with the same arguments once it is approved.", tool, out.ID, out.ExpiresAt.UTC().Format(time.RFC3339)),
	}}, nil
}

// pendingRefusal refuses a statement whose approval is pending: the proxy
// has no way to answer "not yet" but an error.
func pendingRefusal(_ string, out ApprovalOutcome) (Result, error) {
	return Result{}, Errorf(CodeApprovalPending, "the statement was NOT run: it is waiting for approval %s (until %s); send it again once it is approved", out.ID, out.ExpiresAt.UTC().Format(time.RFC3339))
}
