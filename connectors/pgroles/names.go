package pgroles

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// RolePrefix starts the name of every role toolgate provisions. The
// sweeper looks only at roles with this prefix and toolgate's marker
// comment; internal/config refuses it for operator-declared roles.
const RolePrefix = "toolgate_pt_"

// markerPrefix starts the COMMENT ON ROLE of every provisioned role.
const markerPrefix = "toolgate passthrough role v1 "

// identity is whom a role stands for: one node of one grant, or one node
// identity (an API-key session named graph/node).
type identity struct {
	Target string `json:"target"`
	DB     string `json:"db"`
	Grant  string `json:"grant,omitempty"`
	Graph  string `json:"graph"`
	Node   string `json:"node"`
}

// roleName is the role's name: the prefix and 20 hex digits of a hash of
// the database, the target and the identity, the same on every instance.
// Only [a-z0-9_] appear in it, so it is a valid identifier in any quoting.
func (id identity) roleName() string {
	h := sha256.New()
	for _, s := range [...]string{"toolgate passthrough role", id.DB, id.Target, id.Grant, id.Graph, id.Node} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return RolePrefix + hex.EncodeToString(h.Sum(nil))[:20]
}

// marker is the role's COMMENT: what it stands for, readable by operators
// and by the sweeper.
func (id identity) marker() string {
	b, _ := json.Marshal(id)
	return markerPrefix + string(b)
}

// parseMarker reads a role's COMMENT; false when it is not toolgate's or
// does not match the role's name.
func parseMarker(role, comment string) (identity, bool) {
	rest, ok := strings.CutPrefix(comment, markerPrefix)
	if !ok {
		return identity{}, false
	}
	var id identity
	if err := json.Unmarshal([]byte(rest), &id); err != nil || id.roleName() != role {
		return identity{}, false
	}
	return id, true
}

// password derives a role's password from the role key: every instance
// sharing the key computes the same one, so none of them races another by
// changing it. It is never logged or recorded.
func password(key []byte, role string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("toolgate passthrough role password v1\x00" + role))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// scramVerifier is the SCRAM-SHA-256 verifier PostgreSQL stores for a
// password (RFC 5802/7677, PostgreSQL's "SCRAM-SHA-256$<iter>:<salt>$
// <StoredKey>:<ServerKey>"). toolgate sends the verifier in ALTER ROLE, so
// the password never reaches the server's statement log. Its alphabet is
// base64, digits, ':' and '$': it needs no escaping in a literal.
func scramVerifier(pw string) (string, error) {
	const iter = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, pw, salt, iter, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// advisoryKey is the pg_advisory_xact_lock key that serialises every
// change to one role across instances.
func advisoryKey(role string) int64 {
	h := sha256.Sum256([]byte("toolgate role lock\x00" + role))
	return int64(binary.BigEndian.Uint64(h[:8]))
}
