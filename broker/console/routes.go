package console

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"
)

// The console's paths.
const (
	prefix        = "/console/"
	pathSignIn    = "/console/signin"
	pathSignOut   = "/console/signout"
	pathOIDC      = "/console/auth/oidc"
	pathCallback  = "/console/auth/callback"
	pathInbox     = "/console/inbox"
	pathInboxLive = "/console/inbox/live"
	pathHistory   = "/console/history"
	pathApprovals = "/console/approvals/"
	pathRuns      = "/console/runs"
	pathStatic    = "/console/static/"
)

// contentSecurityPolicy allows nothing inline and nothing from elsewhere:
// scripts and styles come only from /console/static, no page may frame the
// console, and forms post only to it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// maxFormBytes caps a console form (a reason, a key).
const maxFormBytes = 64 << 10

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+pathStatic, staticFiles())
	mux.HandleFunc("GET "+pathSignIn, c.signInPage)
	mux.HandleFunc("POST "+pathSignIn, c.signIn)
	mux.HandleFunc("GET "+pathOIDC, c.oidcStart)
	mux.HandleFunc("GET "+pathCallback, c.oidcCallback)
	mux.Handle("POST "+pathSignOut, c.signedIn(c.signOut))
	mux.Handle("GET /console/{$}", c.signedIn(func(w http.ResponseWriter, r *http.Request, _ viewer) {
		http.Redirect(w, r, pathInbox, http.StatusSeeOther)
	}))
	mux.Handle("GET "+pathInbox, c.signedIn(c.inbox))
	mux.Handle("GET "+pathInboxLive, c.signedIn(c.inboxLive))
	mux.Handle("GET "+pathHistory, c.signedIn(c.history))
	mux.Handle("GET "+pathApprovals+"{id}", c.signedIn(c.approval))
	mux.Handle("POST "+pathApprovals+"{id}/{verb}", c.signedIn(c.decide))
	mux.Handle("GET "+pathRuns, c.signedIn(c.auditor(c.runs)))
	mux.Handle("GET "+pathRuns+"/{run}", c.signedIn(c.auditor(c.run)))
	mux.Handle("GET "+pathRuns+"/{run}/export", c.signedIn(c.auditor(c.export)))
	mux.HandleFunc(prefix, func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusNotFound, "Not found", "There is no console page at "+r.URL.Path+".")
	})
	return c.secured(mux)
}

// secured sets the security headers on every console response, caps form
// bodies and turns a panic into a 500 with an incident id.
func (c *Console) secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				c.internal(w, r, fmt.Errorf("panic: %v", p))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// auditor lets next run only for auditors; anyone else gets a page that
// says why.
func (c *Console) auditor(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, v viewer) {
		if err := c.cfg.Audit.Auditor(v.principal()); err != nil {
			c.log.Info("console audit view refused", zap.String("principal", v.principal().Subject), zap.String("path", r.URL.Path))
			c.errorPageFor(w, r, v, http.StatusForbidden, "Auditors only",
				"You are signed in as "+v.principal().Subject+", which is not an auditor: only principals listed in auth.auditors may see runs and audit records.")
			return
		}
		next(w, r, v)
	}
}
