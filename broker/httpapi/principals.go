package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// PrincipalService is offboarding as the principals API sees it
// (cmd/toolgate adapts principals.Service to it). It decides who may act;
// answers are JSON documents it shapes.
type PrincipalService interface {
	// DisablePrincipal disables a principal and suspends what it owns.
	DisablePrincipal(ctx context.Context, p broker.Principal, principal, reason string) (any, error)
	// EnablePrincipal enables a principal again.
	EnablePrincipal(ctx context.Context, p broker.Principal, principal string) (any, error)
	// PrincipalStates lists the principals that are or were disabled.
	PrincipalStates(ctx context.Context, p broker.Principal) (any, error)
	// AccessReview returns the access review for an admin or auditor.
	AccessReview(ctx context.Context, p broker.Principal, stale time.Duration) (any, error)
}

// DefaultReviewStale is the stale period of GET /v1/access/review without
// ?stale=.
const DefaultReviewStale = 30 * 24 * time.Hour

// NewPrincipals returns the handler for GET /v1/principals,
// POST /v1/principals/{principal}/disable|enable (body {"reason": "…"}) and
// GET /v1/access/review?stale=30d. Every request is authenticated; svc
// decides who may act (admins; auditors may read the review).
func NewPrincipals(p broker.Pipeline, svc PrincipalService, opts Options) http.Handler {
	log, meta := opts.logger(), opts.ResourceMetadataURL
	fail := reporter{p: p, meta: meta}.writeError
	answer := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			fail(w, err)
			return
		}
		door.WriteJSON(w, http.StatusOK, v)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/principals", allow(door.Authenticate(p, meta, func(w http.ResponseWriter, r *http.Request, c broker.Caller) {
		v, err := svc.PrincipalStates(r.Context(), c.Principal)
		answer(w, map[string]any{"principals": v}, err)
	}), http.MethodGet, http.MethodHead))
	mux.Handle("/v1/principals/{principal}/{verb}", allow(door.Authenticate(p, meta, func(w http.ResponseWriter, r *http.Request, c broker.Caller) {
		name := r.PathValue("principal") // unescaped by ServeMux
		var in struct {
			Reason string `json:"reason"`
		}
		switch r.PathValue("verb") {
		case "disable":
			if err := decodeBody(w, r, &in, `{"reason": "left the company"}`); err != nil {
				fail(w, err)
				return
			}
			v, err := svc.DisablePrincipal(r.Context(), c.Principal, name, in.Reason)
			log.Info("principal disable requested", zap.String("principal", name), zap.String("by", c.Principal.Subject), zap.Bool("ok", err == nil))
			answer(w, v, err)
		case "enable":
			v, err := svc.EnablePrincipal(r.Context(), c.Principal, name)
			log.Info("principal enable requested", zap.String("principal", name), zap.String("by", c.Principal.Subject), zap.Bool("ok", err == nil))
			answer(w, v, err)
		default:
			fail(w, broker.Errorf(broker.CodeNotFound, "no endpoint %s %s; use /disable or /enable", r.Method, r.URL.Path))
		}
	}), http.MethodPost))
	mux.Handle("/v1/access/review", allow(door.Authenticate(p, meta, func(w http.ResponseWriter, r *http.Request, c broker.Caller) {
		stale, err := staleParam(r.URL.Query())
		if err != nil {
			fail(w, err)
			return
		}
		v, err := svc.AccessReview(r.Context(), c.Principal, stale)
		answer(w, v, err)
	}), http.MethodGet, http.MethodHead))
	return finishMux(p, meta, mux)
}

// staleParam reads ?stale= (days like 30d, or a Go duration).
func staleParam(q url.Values) (time.Duration, error) {
	for k, v := range q {
		if k != "stale" || len(v) != 1 {
			return 0, &broker.Error{Code: broker.CodeInvalidRequest, Field: k, Message: "only one ?stale= is accepted, e.g. ?stale=30d"}
		}
	}
	raw := q.Get("stale")
	if raw == "" {
		return DefaultReviewStale, nil
	}
	d, err := parseLifetime([]byte(strconv.Quote(raw)), "stale")
	if err != nil {
		return 0, &broker.Error{Code: broker.CodeInvalidRequest, Field: "stale", Message: "stale must be a period like 30d or 720h"}
	}
	return d, nil
}
