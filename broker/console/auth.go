package console

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// viewer is who a console request comes from: the caller the broker
// identified from the session's credential just now.
type viewer struct {
	caller    broker.Caller
	sessionID string
	csrf      string
	auditor   bool
}

func (v viewer) principal() broker.Principal { return v.caller.Principal }

// handlerFunc is a console handler for a signed-in viewer.
type handlerFunc func(w http.ResponseWriter, r *http.Request, v viewer)

// signedIn runs next for a request whose session is live and whose
// credential the broker still accepts, identified afresh on this request.
// Without a session a browser is sent to the sign-in page (and brought back
// to where it was going); a state change must carry the session's CSRF
// token, compared in constant time, or it is refused and changes nothing.
func (c *Console) signedIn(next handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := c.cookie(r, cookieSession)
		s, ok := c.sessions.use(id)
		if !ok {
			c.toSignIn(w, r, false)
			return
		}
		if s.oauth != nil {
			s = c.refresh(r.Context(), id, s)
		}
		caller, err := c.cfg.Identifier.Identify(r.Context(), broker.Credentials{Token: s.token})
		if err == nil && caller.Principal.Method == broker.AuthGrant {
			err = broker.Errorf(broker.CodeForbidden, "a grant token cannot sign in to the console")
		}
		if err != nil {
			c.sessions.drop(id)
			c.setCookie(w, cookieSession, "", -1)
			e, _ := broker.AsError(err)
			c.log.Info("console session ended: its credential is no longer accepted", zap.String("principal", s.subject), zap.String("code", string(e.Code)))
			c.toSignIn(w, r, true)
			return
		}
		if r.Method == http.MethodPost {
			if !c.sameOrigin(r) || !equalToken(r.PostFormValue("csrf"), s.csrf) {
				c.refuseCSRF(w, r)
				return
			}
		}
		v := viewer{caller: caller, sessionID: id, csrf: s.csrf, auditor: c.cfg.Audit.Auditor(caller.Principal) == nil}
		next(w, r, v)
	})
}

// refuseCSRF answers a state change without the session's token.
func (c *Console) refuseCSRF(w http.ResponseWriter, r *http.Request) {
	c.log.Warn("console request refused: missing or wrong CSRF token", zap.String("path", r.URL.Path))
	c.errorPage(w, r, http.StatusForbidden, "Request refused",
		"This form was not sent from a current console page (its security token is missing or wrong), so nothing was changed. Reload the page and try again.")
}

// sameOrigin reports whether a state change names no foreign origin: a
// browser sends Origin on a POST, and it must be this host or public_url's.
// Without Origin the CSRF token alone decides.
func (c *Console) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false // includes "null" from sandboxed frames and file: pages
	}
	pub, _ := url.Parse(c.cfg.PublicURL)
	return strings.EqualFold(u.Host, r.Host) || strings.EqualFold(u.Host, pub.Host)
}

// toSignIn sends a browser without a usable session to the sign-in page,
// bringing it back to a GET page afterwards; refused says the session's
// credential was refused (the page says so). A page's poll (live updates)
// gets 401, which its script turns into the same trip.
func (c *Console) toSignIn(w http.ResponseWriter, r *http.Request, refused bool) {
	if r.URL.Path == pathInboxLive {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("sign in again\n"))
		return
	}
	q := url.Values{}
	if r.Method == http.MethodGet {
		if next := localPath(r.URL.RequestURI()); next != "" {
			q.Set("next", next)
		}
	}
	if refused {
		q.Set("why", "refused")
	}
	target := pathSignIn
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// localPath returns next if it is a path inside the console that is safe
// to redirect to after sign-in, else "". Only a plain absolute path under
// /console/ passes: no scheme, no host, no "//" or backslash tricks, no
// dot segments, no control characters, so the sign-in can never become an
// open redirect.
func localPath(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, prefix) || strings.ContainsAny(next, "\\\x00\r\n\t") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") {
		clean += "/"
	}
	if clean != u.Path {
		return ""
	}
	if !strings.HasPrefix(u.Path, prefix) || strings.HasPrefix(u.Path, pathSignIn) || strings.HasPrefix(u.Path, "/console/auth/") {
		return ""
	}
	out := u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}
