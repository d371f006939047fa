package console

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// signInData is what the sign-in page shows.
type signInData struct {
	Next    string
	CSRF    string
	OIDC    bool
	Message string
	Error   string
}

// signInPage shows the sign-in form: paste an API key, or (with OIDC) go
// to the identity provider. A browser that is signed in already goes on.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if _, ok := c.sessions.use(c.cookie(r, cookieSession)); ok {
		http.Redirect(w, r, orInbox(next), http.StatusSeeOther)
		return
	}
	d := signInData{Next: next, OIDC: c.oidc != nil}
	switch r.URL.Query().Get("why") {
	case "refused":
		d.Message = "You were signed out: your credential is no longer accepted (a revoked key or a disabled account). Sign in again."
	case "signedout":
		d.Message = "You are signed out."
	}
	c.renderSignIn(w, r, http.StatusOK, d)
}

// renderSignIn renders the sign-in page with a fresh pre-session CSRF
// token in a cookie and in the form (double submit).
func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	d.CSRF = randomToken(32)
	c.setCookie(w, cookiePre, d.CSRF, 3600)
	c.render(w, r, status, "signin", page{Title: "Sign in", Body: d})
}

func orInbox(next string) string {
	if next == "" {
		return pathInbox
	}
	return next
}

// signIn signs a browser in with an API key: the broker identifies the key,
// a new session (a new id, never one the browser brought) keeps it, and the
// browser goes on to next. A grant token is refused: it acts as a node of
// its graph, not as a person.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	d := signInData{Next: next, OIDC: c.oidc != nil}
	if !c.sameOrigin(r) || !equalToken(r.PostFormValue("csrf"), c.cookie(r, cookiePre)) {
		c.refuseCSRF(w, r)
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key == "" {
		d.Error = "Paste an API key to sign in."
		c.renderSignIn(w, r, http.StatusBadRequest, d)
		return
	}
	caller, err := c.cfg.Identifier.Identify(r.Context(), broker.Credentials{Token: key})
	if err == nil && caller.Principal.Method == broker.AuthGrant {
		err = broker.Errorf(broker.CodeForbidden, "a grant token acts as a node of its graph and cannot sign in to the console; use your own API key")
	}
	if err != nil {
		e, _ := broker.AsError(err)
		c.log.Info("console sign-in refused", zap.String("code", string(e.Code)))
		d.Error = "That key was not accepted: " + e.Message
		c.renderSignIn(w, r, door.Status(e.Code), d)
		return
	}
	c.startSession(w, r, session{token: key, method: caller.Principal.Method, subject: caller.Principal.Subject}, next)
}

// startSession stores a new session, sets its cookie, clears the sign-in
// cookies and sends the browser on.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, s session, next string) {
	if old := c.cookie(r, cookieSession); old != "" {
		c.sessions.drop(old)
	}
	id := c.sessions.create(s)
	c.setCookie(w, cookieSession, id, 0)
	c.setCookie(w, cookiePre, "", -1)
	c.setCookie(w, cookieLogin, "", -1)
	c.log.Info("console sign-in", zap.String("principal", s.subject), zap.String("auth_method", string(s.method)))
	http.Redirect(w, r, orInbox(next), http.StatusSeeOther)
}

// signOut ends the session on the server and in the browser.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, v viewer) {
	c.sessions.drop(v.sessionID)
	c.setCookie(w, cookieSession, "", -1)
	c.log.Info("console sign-out", zap.String("principal", v.principal().Subject))
	http.Redirect(w, r, pathSignIn+"?why=signedout", http.StatusSeeOther)
}
