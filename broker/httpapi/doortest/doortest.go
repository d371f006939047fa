package doortest

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
)

// The test credentials and names.
const (
	// TokenAlpha is the API key of principal key:alpha, which may act as
	// graph Graph.
	TokenAlpha = "tgk_alpha_secret_0123456789"
	// TokenBeta is the API key of principal key:beta, which may not act as
	// any graph.
	TokenBeta = "tgk_beta_secret_0123456789"
	Graph     = "support-bot"
	// Card is the card number the executor returns and the masker masks.
	Card       = "4111111111111111"
	MaskedCard = "************1111"
)

// Tool names of the test catalog.
const (
	ToolFindCustomer = "crm_find_customer"
	ToolListOrders   = "crm_list_orders"
	ToolRefund       = "billing_refund"
)

// Env is a broker and the fakes behind it.
type Env struct {
	Broker   *broker.Broker
	Exec     *Executor
	Recorder *Recorder
	Catalog  *Catalog
}

// New returns a broker wired with the fakes.
func New(t testing.TB) *Env {
	t.Helper()
	return NewWith(t, nil)
}

// NewWith is New with mod applied to the broker's config.
func NewWith(t testing.TB, mod func(*broker.Config)) *Env {
	t.Helper()
	env := &Env{Exec: &Executor{}, Recorder: &Recorder{}, Catalog: NewCatalog()}
	cfg := broker.Config{
		Live:      broker.Live{Catalog: env.Catalog, Policy: decider{}, Masker: masker{}},
		Targets:   map[string]broker.Executor{"crm": env.Exec, "billing": env.Exec},
		Auth:      authenticator{},
		Recorder:  env.Recorder,
		Approvals: approvals{},
		Now:       func() time.Time { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) },
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	env.Broker = b
	return env
}

// Reload swaps the broker's live configuration for one serving cat, with
// the same policy and masking, as a configuration reload does.
func (env *Env) Reload(t testing.TB, cat broker.Catalog) {
	t.Helper()
	if err := env.Broker.Reload(broker.Live{Catalog: cat, Policy: decider{}, Masker: masker{}}); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// Catalog is a fixed catalog of three tools.
type Catalog struct{ tools []*broker.Tool }

var _ broker.Catalog = (*Catalog)(nil)

// NewCatalog returns the test catalog.
func NewCatalog() *Catalog {
	yes := true
	return &Catalog{tools: []*broker.Tool{
		{
			Name: ToolRefund, Title: "Refund an order", Description: "Refund an order.", Target: "billing",
			InputSchema:  json.RawMessage(`{"type":"object","properties":{"order_id":{"type":"string"},"amount":{"type":"number"}},"required":["order_id","amount"],"additionalProperties":false}`),
			OutputSchema: json.RawMessage(`{"type":"object"}`),
			Annotations:  broker.Annotations{DestructiveHint: &yes},
			Spec:         spec{required: []string{"order_id"}},
		},
		{
			Name: ToolFindCustomer, Title: "Find a customer", Description: "Look up one customer by email address.", Target: "crm",
			InputSchema:  json.RawMessage(`{"type":"object","properties":{"email":{"type":"string","format":"email"}},"required":["email"],"additionalProperties":false}`),
			OutputSchema: json.RawMessage(`{"type":"object","properties":{"rows":{"type":"array"},"row_count":{"type":"integer"}}}`),
			Annotations:  broker.Annotations{ReadOnlyHint: &yes},
			Spec:         spec{required: []string{"email"}},
		},
		{
			Name: ToolListOrders, Title: "List orders", Description: "List a customer's orders.", Target: "crm",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"customer_id":{"type":"integer"}}}`),
			Annotations: broker.Annotations{ReadOnlyHint: &yes},
			Spec:        spec{},
		},
	}}
}

// Lookup finds a tool by name.
func (c *Catalog) Lookup(name string) (*broker.Tool, bool) {
	for _, t := range c.tools {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// Tools returns every tool sorted by name.
func (c *Catalog) Tools() []*broker.Tool { return c.tools }

// spec requires string arguments by name.
type spec struct{ required []string }

func (s spec) ValidateArgs(args map[string]any) error {
	for _, name := range s.required {
		v, ok := args[name]
		if !ok {
			return &broker.Error{Code: broker.CodeInvalidArguments, Field: name, Message: "argument " + name + " is required"}
		}
		if _, ok := v.(string); !ok {
			return &broker.Error{Code: broker.CodeInvalidArguments, Field: name, Message: "argument " + name + " must be a string"}
		}
	}
	return nil
}

func (s spec) Operation(args map[string]any) (broker.Operation, error) {
	op := broker.Operation{SQL: &broker.SQLOperation{Statement: "SELECT 1"}}
	for _, name := range s.required {
		op.SQL.Args = append(op.SQL.Args, args[name])
	}
	return op, nil
}

type authenticator struct{}

func (authenticator) Authenticate(_ context.Context, token string) (broker.Principal, *broker.Binding, error) {
	switch token {
	case TokenAlpha:
		return broker.Principal{Subject: "key:alpha", Method: broker.AuthAPIKey, TokenID: "alpha"}, nil, nil
	case TokenBeta:
		return broker.Principal{Subject: "key:beta", Method: broker.AuthAPIKey, TokenID: "beta"}, nil, nil
	}
	return broker.Principal{}, nil, broker.Errorf(broker.CodeUnauthenticated, "the bearer token is not a known API key")
}

// decider lets key:alpha act as Graph, whose node "triage" may call the
// crm tools and node "refund" may list orders and refund (with approval).
type decider struct{}

var _ broker.GraphIndex = decider{}

// node is a caller's node as decider resolves it.
type node struct{ graph, name string }

func (n node) Path() string { return "graphs." + n.graph + ".nodes." + n.name }

func (decider) MayActAs(p broker.Principal, graph string) bool {
	return p.Subject == "key:alpha" && graph == Graph
}

// Node resolves the nodes triage and refund of Graph; any other is unknown.
func (d decider) Node(c broker.Caller) broker.Node {
	if c.Graph != Graph || (c.Node != "triage" && c.Node != "refund") {
		return nil
	}
	return node{c.Graph, c.Node}
}

// HasGraph declares Graph alone (broker.GraphIndex).
func (decider) HasGraph(graph string) bool { return graph == Graph }

// NodeKeys are Graph's nodes (broker.GraphIndex).
func (decider) NodeKeys(graph string) []string {
	if graph != Graph {
		return nil
	}
	return []string{"refund", "triage"}
}

func allowed(n broker.Node, tool string) bool {
	nd, _ := n.(node)
	if nd.graph != Graph {
		return false
	}
	switch nd.name {
	case "triage":
		return tool == ToolFindCustomer || tool == ToolListOrders
	case "refund":
		return tool == ToolListOrders || tool == ToolRefund
	}
	return false
}

func (decider) Visible(n broker.Node, t *broker.Tool) bool { return allowed(n, t.Name) }

func (decider) Decide(_ context.Context, req broker.Request) (broker.Decision, error) {
	if !allowed(req.Node, req.Tool.Name) {
		return broker.Decision{Effect: broker.EffectDeny, Rule: "default"}, nil
	}
	if req.Tool.Name == ToolRefund {
		return broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]"}, nil
	}
	return broker.Decision{Effect: broker.EffectAllow, Rule: "graphs.support-bot.nodes." + req.Caller.Node + ".allow"}, nil
}

// approvals answers pending for every request, after reporting progress
// once and blocking briefly as a real approval wait does. (mcp-go v1.2.1 can
// drop a notification sent in the instant before a handler returns, so a
// gate that reported and returned at once would make progress tests flaky.)
// The approval id is the one the caller resumed, else "apr_test".
type approvals struct{}

func (approvals) Await(ctx context.Context, req broker.ApprovalRequest) (broker.ApprovalOutcome, error) {
	broker.ProgressFrom(ctx)(1, 0, "waiting for approval")
	select {
	case <-time.After(30 * time.Millisecond):
	case <-ctx.Done():
		return broker.ApprovalOutcome{}, broker.Wrap(broker.CodeTimeout, ctx.Err(), "the call was cancelled while waiting for approval")
	}
	id := "apr_test"
	if req.ResumeID != "" {
		id = req.ResumeID
	}
	return broker.ApprovalOutcome{ID: id, Status: broker.ApprovalPending, ExpiresAt: time.Date(2026, 11, 30, 12, 30, 0, 0, time.UTC)}, nil
}

type masker struct{}

func (masker) PrepareTool(*broker.Tool) (broker.ToolMask, error) {
	return broker.ToolMaskFunc(func(doc []byte) ([]byte, broker.MaskStats, error) {
		n := strings.Count(string(doc), Card)
		return []byte(strings.ReplaceAll(string(doc), Card, MaskedCard)), broker.MaskStats{"card": n}, nil
	}), nil
}

func (masker) MaskRecord(doc []byte) ([]byte, error) {
	return []byte(strings.ReplaceAll(string(doc), Card, MaskedCard)), nil
}

func (masker) MaskText(s string) string { return strings.ReplaceAll(s, Card, MaskedCard) }

// Executor counts executions and returns one row holding the card number.
type Executor struct {
	n               atomic.Int64
	mu              sync.Mutex
	lastTraceParent string
}

var _ broker.Executor = (*Executor)(nil)

// Execute counts and returns a row.
func (e *Executor) Execute(ctx context.Context, op broker.Operation) (broker.Output, error) {
	e.n.Add(1)
	tc := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, tc)
	e.mu.Lock()
	e.lastTraceParent = tc["traceparent"]
	e.mu.Unlock()
	v := `{"rows":[{"id":1,"name":"Ada","card_number":"` + Card + `"}],"row_count":1,"truncated":false}`
	return broker.Output{Value: json.RawMessage(v), Rows: 1, Bytes: len(v)}, nil
}

// Count returns how many operations ran.
func (e *Executor) Count() int { return int(e.n.Load()) }

// LastTraceParent returns the traceparent a connector would have sent the
// target for the last operation: its context's.
func (e *Executor) LastTraceParent() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastTraceParent
}

// Recorder keeps every event; it is brokertest.Recorder, named here so
// front-door tests need not import a second package.
type Recorder = brokertest.Recorder
