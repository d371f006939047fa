package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
	"go.uber.org/zap"
)

// Door is the front-door name the HTTP API puts in broker.Call.
const Door = "http"

// Options configure the HTTP API. The zero value is usable.
type Options struct {
	// Logger receives the door's own notes (grants minted and revoked);
	// nil means zap.NewNop(). Incidents are the broker's to log.
	Logger *zap.Logger
	// MaxBodyBytes caps a call's request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// ResourceMetadataURL is the RFC 9728 metadata URL named in 401
	// challenges (public_url + /.well-known/oauth-protected-resource).
	ResourceMetadataURL string
}

// api serves the /v1/tools endpoints.
type api struct {
	p    broker.Pipeline
	opts Options
}

// New returns the handler for GET /v1/tools and POST /v1/tools/{name}:call.
// Any other path under it answers 404 not_found, a wrong method 405 with
// Allow, and a panic 500 internal with an incident id.
func New(p broker.Pipeline, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	a := &api{p: p, opts: opts}
	mux := http.NewServeMux()
	mux.Handle("/v1/tools", allow(door.Authenticate(p, opts.ResourceMetadataURL, a.listTools), http.MethodGet, http.MethodHead))
	mux.Handle("/v1/tools/{rest}", allow(http.HandlerFunc(a.callRoute), http.MethodPost))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		door.WriteError(w, broker.Errorf(broker.CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path), opts.ResourceMetadataURL)
	})
	return door.Recover(p, mux)
}

// allow answers 405 with Allow for any method not in methods.
func allow(next http.Handler, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		door.WriteJSON(w, http.StatusMethodNotAllowed, door.ErrorBody{Error: door.ErrorDetail{
			Code:    broker.CodeInvalidRequest,
			Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + strings.Join(methods, " or "),
		}})
	})
}

// callerHandler serves a request of an identified caller.
type callerHandler = func(http.ResponseWriter, *http.Request, broker.Caller)

// byMethod authenticates a request and hands it to the handler of its
// method, write (POST or DELETE) or read (GET and HEAD); any other method
// is answered 405 (Allow names POST before the reads, DELETE after them).
// A nil handler is not offered.
func byMethod(p broker.Pipeline, meta, write string, onWrite, onRead callerHandler) http.Handler {
	var methods []string
	if onRead != nil {
		methods = append(methods, http.MethodGet, http.MethodHead)
	}
	if onWrite != nil && write == http.MethodPost {
		methods = append([]string{write}, methods...)
	} else if onWrite != nil {
		methods = append(methods, write)
	}
	return allow(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == write {
			door.Authenticate(p, meta, onWrite).ServeHTTP(w, r)
			return
		}
		door.Authenticate(p, meta, onRead).ServeHTTP(w, r)
	}), methods...)
}

// toolJSON is one tool in the GET /v1/tools listing.
type toolJSON struct {
	Name         string             `json:"name"`
	Title        string             `json:"title,omitempty"`
	Description  string             `json:"description,omitempty"`
	InputSchema  json.RawMessage    `json:"input_schema"`
	OutputSchema json.RawMessage    `json:"output_schema,omitempty"`
	Annotations  broker.Annotations `json:"annotations"`
}

func (a *api) listTools(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	tools, err := a.p.ListTools(r.Context(), c)
	if err != nil {
		a.writeError(w, err)
		return
	}
	out := make([]toolJSON, 0, len(tools))
	for _, t := range tools {
		in := t.InputSchema
		if len(in) == 0 {
			in = json.RawMessage(`{"type":"object"}`)
		}
		out = append(out, toolJSON{Name: t.Name, Title: t.Title, Description: t.Description,
			InputSchema: in, OutputSchema: t.OutputSchema, Annotations: t.Annotations})
	}
	door.WriteJSON(w, http.StatusOK, map[string]any{"tools": out})
}

// callRoute splits /v1/tools/{name}:call on the last ":" and authenticates.
func (a *api) callRoute(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || rest[i+1:] != "call" {
		door.WriteError(w, broker.Errorf(broker.CodeNotFound, "no endpoint %s %s; call a tool with POST /v1/tools/{name}:call", r.Method, r.URL.Path), a.opts.ResourceMetadataURL)
		return
	}
	name := rest[:i]
	door.Authenticate(a.p, a.opts.ResourceMetadataURL, func(w http.ResponseWriter, r *http.Request, c broker.Caller) {
		a.call(w, r, c, name)
	}).ServeHTTP(w, r)
}

// pendingJSON is the 202 body of a call held for approval.
type pendingJSON struct {
	CallID     string    `json:"call_id"`
	Status     string    `json:"status"`
	ApprovalID string    `json:"approval_id"`
	ExpiresAt  time.Time `json:"expires_at"`
	Message    string    `json:"message"`
}

// resultJSON is the 200 body of a call that ran.
type resultJSON struct {
	CallID string          `json:"call_id"`
	Result json.RawMessage `json:"result"`
}

func (a *api) call(w http.ResponseWriter, r *http.Request, c broker.Caller, name string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			a.writeError(w, broker.Errorf(broker.CodePayloadTooLarge, "the request body is over %d bytes; send smaller arguments", a.opts.MaxBodyBytes))
			return
		}
		a.writeError(w, broker.Wrap(broker.CodeInvalidRequest, err, "the request body could not be read"))
		return
	}
	// The body goes to the pipeline as is, even when it is not a JSON
	// object: the broker refuses it with invalid_arguments and records the
	// refusal, so the audit trail sees every attempted call.
	res, err := a.p.Call(r.Context(), broker.Call{
		Caller:     c,
		Door:       Door,
		Tool:       name,
		Args:       body,
		ApprovalID: strings.TrimSpace(r.Header.Get(broker.HeaderApproval)),
	})
	if err != nil {
		a.writeError(w, err)
		return
	}
	if res.Pending != nil {
		door.WriteJSON(w, http.StatusAccepted, pendingJSON{
			CallID: res.CallID, Status: res.Pending.Status, ApprovalID: res.Pending.ApprovalID,
			ExpiresAt: res.Pending.ExpiresAt, Message: res.Pending.Message,
		})
		return
	}
	value := res.Value
	if len(value) == 0 {
		value = json.RawMessage(`{}`)
	}
	door.WriteJSON(w, http.StatusOK, resultJSON{CallID: res.CallID, Result: value})
}

// writeError writes err. What the pipeline answered is already reported;
// anything else a door meets goes through the broker's Report, the one
// place an internal failure is logged, under the incident id the client
// sees. Every API of this door writes its errors this way.
func (a *api) writeError(w http.ResponseWriter, err error) {
	door.WriteError(w, a.p.Report(err), a.opts.ResourceMetadataURL)
}
