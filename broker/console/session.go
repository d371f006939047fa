package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/toolgate/toolgate/broker"
)

// session is one signed-in browser. It lives only in this process's
// memory: the cookie carries a random id, and the map is keyed by the id's
// SHA-256, so neither a cookie nor the credential is ever written anywhere.
type session struct {
	// token is the credential the session re-identifies with on every
	// request (an API key, or the OIDC token the broker accepts). It is
	// never logged or shown.
	token string
	// oauth is the identity provider's token set of an OIDC sign-in, for
	// refreshing token; nil for an API key.
	oauth *oauth2.Token
	// bearer says which token of oauth the broker accepts ("access" or
	// "id").
	bearer  string
	method  broker.AuthMethod
	subject string
	csrf    string
	created time.Time
	seen    time.Time
	expires time.Time
	flash   flash
}

// flash is a one-time message shown on the next page.
type flash struct {
	Text  string
	Error bool
}

// sessions is the in-memory session store.
type sessions struct {
	ttl, idle time.Duration
	max       int
	now       func() time.Time

	mu    sync.Mutex
	byKey map[string]*session
}

func newSessions(ttl, idle time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, idle: idle, max: max, now: now, byKey: map[string]*session{}}
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

func keyOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// create stores a new session for s and returns the id its cookie carries.
// Expired sessions are dropped first, then the least recently used ones
// while the store is full.
func (st *sessions) create(s session) string {
	id := randomToken(32)
	now := st.now()
	s.csrf = randomToken(32)
	s.created, s.seen, s.expires = now, now, now.Add(st.ttl)
	if s.oauth != nil && !s.oauth.Expiry.IsZero() && s.oauth.RefreshToken == "" && s.oauth.Expiry.Before(s.expires) {
		s.expires = s.oauth.Expiry
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, old := range st.byKey {
		if st.dead(old, now) {
			delete(st.byKey, k)
		}
	}
	for len(st.byKey) >= st.max {
		oldest := ""
		for k, old := range st.byKey {
			if oldest == "" || old.seen.Before(st.byKey[oldest].seen) {
				oldest = k
			}
		}
		delete(st.byKey, oldest)
	}
	st.byKey[keyOf(id)] = &s
	return id
}

func (st *sessions) dead(s *session, now time.Time) bool {
	return !now.Before(s.expires) || !now.Before(s.seen.Add(st.idle))
}

// use returns a copy of the live session with id and marks it used; ok is
// false for an unknown, expired or idle one (which is dropped).
func (st *sessions) use(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	k := keyOf(id)
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byKey[k]
	if !ok {
		return session{}, false
	}
	if st.dead(s, now) {
		delete(st.byKey, k)
		return session{}, false
	}
	s.seen = now
	return *s, true
}

// update replaces the credential of session id after a token refresh.
func (st *sessions) update(id string, token string, oauth *oauth2.Token) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.byKey[keyOf(id)]; ok {
		s.token, s.oauth = token, oauth
	}
}

// setFlash stores a message for the next page of session id.
func (st *sessions) setFlash(id string, f flash) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.byKey[keyOf(id)]; ok {
		s.flash = f
	}
}

// takeFlash returns and clears the message of session id.
func (st *sessions) takeFlash(id string) flash {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byKey[keyOf(id)]
	if !ok {
		return flash{}
	}
	f := s.flash
	s.flash = flash{}
	return f
}

// drop forgets session id (sign-out, or a credential no longer accepted).
func (st *sessions) drop(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byKey, keyOf(id))
}

// len returns how many sessions are stored.
func (st *sessions) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.byKey)
}

// equalToken compares two secrets in constant time; empty never matches.
func equalToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Cookie names. With https every console cookie carries the __Host-
// prefix, which browsers accept only with Secure, Path=/ and no Domain, so
// no sibling subdomain can plant one.
const (
	cookieSession = "toolgate_console"
	// cookiePre carries the sign-in form's CSRF token before a session
	// exists (double submit), so nobody can sign a browser in with their
	// own key from another site.
	cookiePre = "toolgate_console_pre"
	// cookieLogin binds an OIDC sign-in in flight to the browser that
	// started it.
	cookieLogin = "toolgate_console_login"
)

func (c *Console) cookieName(name string) string {
	if c.secure {
		return "__Host-" + name
	}
	return name
}

// setCookie sets a console cookie: HttpOnly, SameSite=Lax (the OIDC
// callback arrives as a top-level navigation from the identity provider,
// which Strict would strip); behind https Secure with Path=/ (the __Host-
// prefix requires it; the rest of toolgate ignores cookies), else scoped
// to /console/. maxAge < 0 deletes it; 0 makes a browser-session cookie.
func (c *Console) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	path := prefix
	if c.secure {
		path = "/"
	}
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(name), Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

// cookie returns the value of a console cookie, "" when absent.
func (c *Console) cookie(r *http.Request, name string) string {
	ck, err := r.Cookie(c.cookieName(name))
	if err != nil {
		return ""
	}
	return ck.Value
}
