package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// GrantRequest asks for a JIT grant (the body of POST /v1/grants).
type GrantRequest struct {
	Graph    string
	RunID    string
	ThreadID string
	// Nodes are node paths such as "triage" or "supervisor/research".
	Nodes []string
	TTL   time.Duration
	Scope map[string]any
}

// MintedGrant is a new grant with one token per node. It is the only value
// that ever carries grant tokens.
type MintedGrant struct {
	GrantID   string
	ExpiresAt time.Time
	Tokens    map[string]string
}

// GrantInfo describes a grant without its tokens.
type GrantInfo struct {
	ID        string         `json:"grant_id"`
	Graph     string         `json:"graph"`
	Run       string         `json:"run_id"`
	Thread    string         `json:"thread_id,omitempty"`
	Nodes     []string       `json:"nodes"`
	Scope     map[string]any `json:"scope"`
	CreatedBy string         `json:"created_by"`
	CreatedAt time.Time      `json:"created_at"`
	ExpiresAt time.Time      `json:"expires_at"`
	// RevokedAt is nil while the grant is not revoked.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Status is "active", "expired" or "revoked".
	Status string `json:"status"`
}

// GrantService is the grant service as the grants API sees it (cmd/toolgate
// adapts auth.Grants to it). It enforces who may mint, read and revoke.
type GrantService interface {
	// MintGrant creates a grant with one token per node.
	MintGrant(ctx context.Context, p broker.Principal, req GrantRequest) (MintedGrant, error)
	// Grant returns one grant; not_found for an unknown id or one p may not see.
	Grant(ctx context.Context, p broker.Principal, id string) (GrantInfo, error)
	// RevokeGrant revokes every token of the grant at once.
	RevokeGrant(ctx context.Context, p broker.Principal, id string) error
}

// GrantLister is the optional GrantService ability behind GET /v1/grants.
type GrantLister interface {
	// Grants lists the grants of graph (of one run when run is not empty),
	// newest first.
	Grants(ctx context.Context, p broker.Principal, graph, run string) ([]GrantInfo, error)
}

// grantsAPI serves /v1/grants.
type grantsAPI struct {
	reporter
	svc GrantService
	log *zap.Logger
}

// NewGrants returns the handler for POST /v1/grants, GET /v1/grants (when
// svc is a GrantLister), GET /v1/grants/{id} and DELETE /v1/grants/{id}.
// Every request is authenticated; svc decides who may do what. Tokens
// appear only in the 201 answer of a mint, never in a log or another answer.
func NewGrants(p broker.Pipeline, svc GrantService, opts Options) http.Handler {
	meta := opts.ResourceMetadataURL
	g := &grantsAPI{reporter: reporter{p: p, meta: meta}, svc: svc, log: opts.logger()}
	mux := http.NewServeMux()
	mux.Handle("/v1/grants", byMethod(p, meta, http.MethodPost, g.mint, g.list))
	mux.Handle("/v1/grants/{id}", byMethod(p, meta, http.MethodDelete, g.revoke, g.get))
	return finishMux(p, meta, mux)
}

// mintJSON is the body of POST /v1/grants.
type mintJSON struct {
	Graph    string          `json:"graph"`
	RunID    string          `json:"run_id"`
	ThreadID string          `json:"thread_id"`
	Nodes    []string        `json:"nodes"`
	TTL      json.RawMessage `json:"ttl"`
	Scope    map[string]any  `json:"scope"`
}

// mintedJSON is the 201 answer of POST /v1/grants.
type mintedJSON struct {
	GrantID   string            `json:"grant_id"`
	ExpiresAt time.Time         `json:"expires_at"`
	Tokens    map[string]string `json:"tokens"`
}

// DefaultGrantTTL is the TTL of a grant whose request names none.
const DefaultGrantTTL = 15 * time.Minute

func (g *grantsAPI) mint(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	body, err := readBody(w, r, "; send a smaller scope")
	if err != nil {
		g.writeError(w, err)
		return
	}
	var in mintJSON
	if err := decodeObject(body, &in, `{"graph": "support-bot", "run_id": "r1", "nodes": ["triage"], "ttl": "15m", "scope": {}}`); err != nil {
		g.writeError(w, err)
		return
	}
	ttl, err := parseTTL(in.TTL)
	if err != nil {
		g.writeError(w, err)
		return
	}
	res, err := g.svc.MintGrant(r.Context(), c.Principal, GrantRequest{
		Graph: in.Graph, RunID: in.RunID, ThreadID: in.ThreadID, Nodes: in.Nodes, TTL: ttl, Scope: in.Scope,
	})
	if err != nil {
		g.writeError(w, err)
		return
	}
	g.log.Info("grant minted", zap.String("grant", res.GrantID), zap.String("graph", in.Graph),
		zap.String("run", in.RunID), zap.String("by", c.Principal.Subject), zap.Int("nodes", len(res.Tokens)))
	w.Header().Set("Location", "/v1/grants/"+res.GrantID)
	door.WriteJSON(w, http.StatusCreated, mintedJSON{GrantID: res.GrantID, ExpiresAt: res.ExpiresAt, Tokens: res.Tokens})
}

// jsonProblem describes a decoding error without echoing the body.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type (want %s)", te.Field, te.Type)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	return "malformed JSON"
}

// parseTTL reads "ttl": a Go duration string ("15m", "1h30m"), a number of
// seconds (900 or "900"), or nothing (DefaultGrantTTL).
func parseTTL(raw json.RawMessage) (time.Duration, error) {
	bad := &broker.Error{Code: broker.CodeInvalidArguments, Field: "ttl", Message: `ttl must be a positive duration like "15m" or a number of seconds like 900`}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return DefaultGrantTTL, nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, bad
		}
	} else {
		s = string(raw)
	}
	s = strings.TrimSpace(s)
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs <= 0 || secs > float64(1<<62)/float64(time.Second) {
			return 0, bad
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, bad
	}
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}

func (g *grantsAPI) get(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	info, err := g.svc.Grant(r.Context(), c.Principal, r.PathValue("id"))
	if err != nil {
		g.writeError(w, err)
		return
	}
	door.WriteJSON(w, http.StatusOK, info)
}

func (g *grantsAPI) revoke(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	id := r.PathValue("id")
	if err := g.svc.RevokeGrant(r.Context(), c.Principal, id); err != nil {
		g.writeError(w, err)
		return
	}
	g.log.Info("grant revoked", zap.String("grant", id), zap.String("by", c.Principal.Subject))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (g *grantsAPI) list(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	l, ok := g.svc.(GrantLister)
	if !ok {
		g.writeError(w, broker.Errorf(broker.CodeNotFound, "this server does not list grants; GET /v1/grants/{id} reads one"))
		return
	}
	q := r.URL.Query()
	graph := q.Get("graph")
	if graph == "" {
		graph = c.Graph
	}
	out, err := l.Grants(r.Context(), c.Principal, graph, q.Get("run"))
	if err != nil {
		g.writeError(w, err)
		return
	}
	if out == nil {
		out = []GrantInfo{}
	}
	door.WriteJSON(w, http.StatusOK, map[string]any{"grants": out})
}
