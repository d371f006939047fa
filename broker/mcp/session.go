package mcp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/toolgate/toolgate/broker"
)

// sessionPrefix starts every Mcp-Session-Id toolgate mints.
const sessionPrefix = "mcp-session-"

// errForeignSession is a session id not minted for the caller presenting it.
var errForeignSession = errors.New("no such session for this caller")

// sessionBinding is what a session is bound to: the caller's principal (in
// normal form) and the graph and node it acts as.
func sessionBinding(c broker.Caller) string {
	return broker.PrincipalName(c.Principal.Subject) + "\x00" + c.Graph + "\x00" + c.Node
}

// sessionSum binds a session nonce to a binding. It needs no key: the id
// carries the nonce and the sum, and only a caller with the same binding
// computes the same sum, so an id cannot be used by anyone else (that
// would take a SHA-256 second preimage), while every broker instance can
// check it without shared state.
func sessionSum(nonce, binding string) string {
	h := sha256.Sum256([]byte("toolgate mcp session v1\x00" + nonce + "\x00" + binding))
	return hex.EncodeToString(h[:16])
}

// newSessionID mints a session id bound to c: "mcp-session-<nonce>.<sum>".
func newSessionID(c broker.Caller) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	return sessionPrefix + nonce + "." + sessionSum(nonce, sessionBinding(c))
}

// sessionOwnedBy reports whether id was minted for c's principal, graph and
// node.
func sessionOwnedBy(id string, c broker.Caller) bool {
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	if !ok {
		return false
	}
	nonce, sum, ok := strings.Cut(rest, ".")
	if !ok || len(nonce) != 32 || len(sum) != 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(sum), []byte(sessionSum(nonce, sessionBinding(c)))) == 1
}

// sessions is mcp-go's session id manager resolver: each request gets a
// manager bound to its identified caller, so sessions are minted for, and
// accepted from, that caller only. Handler also refuses a foreign session
// id on every method (POST, the GET stream, DELETE) before mcp-go sees the
// request, because mcp-go does not validate the id of a GET.
type sessions struct{}

var _ server.SessionIdManagerResolver = sessions{}

// ResolveSessionIdManager returns the manager for r's caller; r is nil for
// mcp-go's own housekeeping, which gets a manager that validates nothing.
func (sessions) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	if r == nil {
		return callerSessions{}
	}
	cc, ok := callFrom(r.Context())
	return callerSessions{caller: cc.caller, known: ok, request: true}
}

// callerSessions mints and checks the session ids of one caller.
type callerSessions struct {
	caller  broker.Caller
	known   bool
	request bool
}

// Generate mints a session id bound to the caller; without one (which
// Handler never lets happen) it mints an id nobody can use.
func (m callerSessions) Generate() string {
	if !m.known {
		return sessionPrefix + "unbound"
	}
	return newSessionID(m.caller)
}

// Validate accepts only the caller's own session ids.
func (m callerSessions) Validate(id string) (bool, error) {
	if !m.request {
		return false, nil
	}
	if !m.known || !sessionOwnedBy(id, m.caller) {
		return false, errForeignSession
	}
	return false, nil
}

// Terminate lets the caller end its own sessions only.
func (m callerSessions) Terminate(id string) (bool, error) {
	_, err := m.Validate(id)
	return false, err
}
