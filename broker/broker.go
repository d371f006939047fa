package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Config wires a Broker: what stays for the life of the process (targets,
// authentication, the recorder, the approval gate, the clock and logger)
// and, in Live, the first configuration it serves. Every field but
// Approvals, Logger, Now, RecordResults and the limits is required: a
// broker without policy, masking or a recorder does not start.
type Config struct {
	// Live is the configuration served first; Reload replaces it.
	Live     Live
	Targets  map[string]Executor
	Auth     Authenticator
	Recorder Recorder
	// Approvals gates approve decisions. Without it, an approve decision
	// is refused (fail closed), never run.
	Approvals Approvals
	Logger    *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RecordResults stores the (masked) result in the audit record
	// (recordings.results: masked).
	RecordResults bool
	// MaxArgsBytes caps the size of a call's arguments; 0 means 1 MiB.
	MaxArgsBytes int
	// MaxArgsDepth caps the nesting of a call's arguments; 0 means 32.
	MaxArgsDepth int
	// Tracer traces every call and passthrough statement (trace.go); nil
	// means off, at no cost.
	Tracer trace.Tracer
	// PreviewRows caps the sample rows of an approval's effect preview
	// (approvals.preview.max_rows); 0 means 20.
	PreviewRows int
	// PreviewBytes caps the size of a preview's masked sample
	// (approvals.preview.max_bytes); 0 means 64 KiB.
	PreviewBytes int
}

// Validate reports what is missing.
func (c Config) Validate() error {
	missing := c.Live.missing()
	if c.Auth == nil {
		missing = append(missing, "Auth")
	}
	if c.Recorder == nil {
		missing = append(missing, "Recorder")
	}
	if len(missing) > 0 {
		return fmt.Errorf("broker config: missing %v", missing)
	}
	return nil
}

// Broker is the pipeline. It is safe for concurrent use. What a reload
// replaces lives in one snapshot behind one atomic pointer: a call loads it
// once and sees one whole configuration.
type Broker struct {
	cfg    Config
	log    *zap.Logger
	now    func() time.Time
	tracer trace.Tracer
	live   atomic.Pointer[Snapshot]
	// gen numbers snapshots; reloadMu orders Reloads.
	gen      atomic.Uint64
	reloadMu sync.Mutex
	// completer is the approval gate's ApprovalRecorder ability, nil
	// without it.
	completer ApprovalRecorder
}

// New returns a Broker for a valid config, serving cfg.Live.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxArgsBytes <= 0 {
		cfg.MaxArgsBytes = 1 << 20
	}
	if cfg.MaxArgsDepth <= 0 {
		cfg.MaxArgsDepth = 32
	}
	if cfg.PreviewRows <= 0 {
		cfg.PreviewRows = DefaultPreviewRows
	}
	if cfg.PreviewBytes <= 0 {
		cfg.PreviewBytes = DefaultPreviewBytes
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, now: cfg.Now, tracer: cfg.Tracer}
	b.completer, _ = cfg.Approvals.(ApprovalRecorder)
	if err := b.Reload(cfg.Live); err != nil {
		return nil, err
	}
	return b, nil
}

// Reload builds a snapshot of l (every tool's and passthrough route's
// masking prepared, the policy's abilities found) and swaps it in
// atomically: a call in flight finishes on the snapshot it started with,
// the next one sees the new one. A live configuration that does not build
// is refused and the old one keeps serving.
func (b *Broker) Reload(l Live) error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	s, err := newSnapshot(l, b.gen.Load()+1)
	if err != nil {
		return err
	}
	b.gen.Store(s.gen)
	b.live.Store(s)
	return nil
}

// Snapshot returns the configuration the broker serves now. Everything
// that reads the live configuration outside a call (the MCP door's tool
// table, grant minting) reads it here.
func (b *Broker) Snapshot() *Snapshot { return b.live.Load() }

// Identify is the gate's first step: it authenticates credentials and
// establishes the caller's LangGraph context. It is the only way to make a
// Caller that Call accepts.
func (b *Broker) Identify(ctx context.Context, cr Credentials) (Caller, error) {
	return b.traced(ctx, cr, b.identify)
}

func (b *Broker) identify(ctx context.Context, cr Credentials) (Caller, error) {
	if cr.Malformed {
		return Caller{}, Errorf(CodeUnauthenticated, "the Authorization header must be \"Bearer <token>\"")
	}
	if cr.Token == "" {
		return Caller{}, Errorf(CodeUnauthenticated, "a bearer token is required (an API key, an OIDC token or a grant token)")
	}
	s := b.live.Load()
	p, binding, err := b.cfg.Auth.Authenticate(ctx, cr.Token)
	if err != nil {
		if code := CodeOf(err); code == CodeUnauthenticated || code == CodeOwnerDisabled {
			return Caller{}, err
		}
		// The authenticator failed, not the credential: an internal
		// failure, logged under an incident id the caller sees.
		e := b.report(s, Wrap(CodeInternal, err, "the credential could not be verified"), traceOf(ctx), zap.String("step", "identify"))
		return Caller{}, &Error{Code: CodeUnauthenticated, Message: e.Message, Cause: err, incident: e.incident}
	}
	c := Caller{Principal: p, verified: true}
	if binding != nil {
		if err := checkBinding(cr.Claimed, binding); err != nil {
			return Caller{}, err
		}
		c.Binding = binding
		c.Context = Context{Graph: binding.Graph, Node: binding.Node, Run: binding.Run, Thread: binding.Thread, ToolCallID: cr.Claimed.ToolCallID}
		if c.Thread == "" {
			c.Thread = cr.Claimed.Thread
		}
		return admitted(ctx, b.cfg.Auth, c)
	}
	c.Context = cr.Claimed
	if c.Node != "" && c.Graph == "" {
		return Caller{}, unidentified(c.Context)
	}
	if c.Graph != "" {
		if s.graphs != nil && !s.graphs.HasGraph(c.Graph) {
			return Caller{}, unknownGraph(c.Graph)
		}
		if !s.live.Policy.MayActAs(p, c.Graph) {
			return Caller{}, Errorf(CodeForbidden, "principal %s may not act as graph %q", p.Subject, c.Graph)
		}
	}
	return admitted(ctx, b.cfg.Auth, c)
}

// checkBinding refuses headers that contradict a grant token.
func checkBinding(claimed Context, bd *Binding) error {
	for _, f := range []struct{ header, claimed, bound string }{
		{HeaderGraph, claimed.Graph, bd.Graph},
		{HeaderNode, claimed.Node, bd.Node},
		{HeaderRun, claimed.Run, bd.Run},
		{HeaderThread, claimed.Thread, bd.Thread},
	} {
		if f.claimed != "" && f.bound != "" && f.claimed != f.bound {
			return Errorf(CodeForbidden, "%s %q contradicts the grant token, which is bound to %q", f.header, f.claimed, f.bound)
		}
	}
	return nil
}

// ListTools returns the tools the caller may call, sorted by name, from one
// snapshot, with one node lookup. A caller that names no graph or node, or
// one policy does not declare, is refused (unidentified, unknown_graph,
// unknown_node), never shown an empty list. Arguments the caller's node
// binds from its grant scope are gone from their input schemas, so the
// model is never asked for them.
func (b *Broker) ListTools(_ context.Context, c Caller) ([]*Tool, error) {
	if !c.verified {
		return nil, Errorf(CodeUnauthenticated, "caller was not identified")
	}
	s := b.live.Load()
	n, err := s.callerNode(c)
	if err != nil {
		return nil, err
	}
	var out []*Tool
	for _, pt := range s.sorted {
		t := pt.tool
		if !s.live.Policy.Visible(n, t) {
			continue
		}
		if s.binder != nil {
			if bound, err := s.binder.Bound(n, c, t); err == nil && len(bound) > 0 {
				t = withoutArgs(t, bound)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// Pipeline is the broker as front doors see it.
type Pipeline interface {
	Identify(ctx context.Context, cr Credentials) (Caller, error)
	ListTools(ctx context.Context, c Caller) ([]*Tool, error)
	Call(ctx context.Context, call Call) (Result, error)
	// Report makes a failure the door met beside the pipeline (a service
	// it serves, a panic) safe to show, logging an internal one once.
	Report(err error) *Error
}

var _ Pipeline = (*Broker)(nil)
