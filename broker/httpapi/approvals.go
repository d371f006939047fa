package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// DoorApprovals is the channel name the approvals API passes to Decide.
const DoorApprovals = "http"

// ApprovalService is the approval gate as the approvals API sees it
// (implemented by approvals.Service, which holds the access rules: the
// handlers only translate).
type ApprovalService interface {
	// Approvals returns the requests f selects that viewer may see.
	Approvals(ctx context.Context, viewer broker.Principal, f broker.ApprovalFilter) ([]broker.ApprovalInfo, error)
	// Approval returns one request viewer may see; not_found for an
	// unknown id or one viewer may not see.
	Approval(ctx context.Context, viewer broker.Principal, id string) (broker.ApprovalInfo, error)
	// Decide records a vote and enforces every approver rule.
	Decide(ctx context.Context, id string, approver broker.Principal, approve bool, reason, channel string) (broker.ApprovalStatus, error)
}

// approvalsAPI serves /v1/approvals.
type approvalsAPI struct {
	p    broker.Pipeline
	svc  ApprovalService
	opts Options
}

// NewApprovals returns the handler for GET /v1/approvals, GET
// /v1/approvals/{id} and POST /v1/approvals/{id}/approve|deny with an
// optional {"reason": "..."} body. Every request is authenticated; svc
// decides what the caller may see (the requests it may decide or that it
// requested) and enforces the approver rules on every decision.
func NewApprovals(p broker.Pipeline, svc ApprovalService, opts Options) http.Handler {
	a := &approvalsAPI{p: p, svc: svc, opts: opts}
	meta := opts.ResourceMetadataURL
	mux := http.NewServeMux()
	mux.Handle("/v1/approvals", allow(door.Authenticate(p, meta, a.list), http.MethodGet, http.MethodHead))
	mux.Handle("/v1/approvals/{id}", allow(door.Authenticate(p, meta, a.get), http.MethodGet, http.MethodHead))
	mux.Handle("/v1/approvals/{id}/{verb}", allow(door.Authenticate(p, meta, a.decide), http.MethodPost))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		door.WriteError(w, broker.Errorf(broker.CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path), meta)
	})
	return door.Recover(p, mux)
}

func (a *approvalsAPI) list(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	out, err := a.svc.Approvals(r.Context(), c.Principal, broker.ApprovalFilter{})
	if err != nil {
		a.writeError(w, err)
		return
	}
	door.WriteJSON(w, http.StatusOK, map[string]any{"approvals": out})
}

func (a *approvalsAPI) get(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	ap, err := a.svc.Approval(r.Context(), c.Principal, r.PathValue("id"))
	if err != nil {
		a.writeError(w, err)
		return
	}
	door.WriteJSON(w, http.StatusOK, ap)
}

// decisionJSON is the body of POST /v1/approvals/{id}/approve|deny.
type decisionJSON struct {
	Reason string `json:"reason"`
}

func (a *approvalsAPI) decide(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	if verb != "approve" && verb != "deny" {
		door.WriteError(w, broker.Errorf(broker.CodeNotFound, "no endpoint %s %s; use /v1/approvals/{id}/approve or /deny", r.Method, r.URL.Path), a.opts.ResourceMetadataURL)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			a.writeError(w, broker.Errorf(broker.CodePayloadTooLarge, "the request body is over 64 KiB; send a shorter reason"))
			return
		}
		a.writeError(w, broker.Wrap(broker.CodeInvalidRequest, err, "the request body could not be read"))
		return
	}
	var d decisionJSON
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			a.writeError(w, broker.Errorf(broker.CodeInvalidRequest, `the body must be a JSON object like {"reason": "..."}`))
			return
		}
	}
	st, err := a.svc.Decide(r.Context(), id, c.Principal, verb == "approve", d.Reason, DoorApprovals)
	if err != nil {
		a.writeError(w, err)
		return
	}
	door.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "status": st})
}

func (a *approvalsAPI) writeError(w http.ResponseWriter, err error) {
	door.WriteError(w, a.p.Report(err), a.opts.ResourceMetadataURL)
}
