package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/toolgate/toolgate/internal/config"
)

// MinSecretBytes is the shortest credential redacted by value. A shorter
// value would match ordinary words and numbers in results, so it is not
// redacted (and New logs where it is configured, never the value).
const MinSecretBytes = 8

// credentialReplacement is what a known credential becomes.
const credentialReplacement = "[REDACTED:credential]"

// credentialStat is the MaskStats key of credential hits.
const credentialStat = "detector:credential"

// Secret is a credential toolgate holds and injects into requests (a
// target header, a DSN password, a token): Where names it in the config,
// Value is the value. Masking replaces the value wherever it appears,
// without a detector: toolgate knows it.
type Secret struct {
	Where string
	Value string
}

// secretSet holds every spelling of the configured credentials.
type secretSet struct {
	spellings [][]byte // longest first, so a longer spelling wins
}

// newSecretSet collects the spellings of secrets; values shorter than
// MinSecretBytes are returned as skipped.
func newSecretSet(secrets []Secret) (set *secretSet, skipped []string) {
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		if len(v) >= MinSecretBytes && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, s := range secrets {
		if len(s.Value) < MinSecretBytes {
			if s.Value != "" {
				skipped = append(skipped, s.Where)
			}
			continue
		}
		for _, v := range credentialParts(s.Value) {
			for _, sp := range spellings(v) {
				add(sp)
			}
		}
	}
	if len(out) == 0 {
		return nil, skipped
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	set = &secretSet{}
	for _, v := range out {
		set.spellings = append(set.spellings, []byte(v))
	}
	return set, skipped
}

// credentialParts returns a credential and the credentials inside it: the
// token of "<scheme> <token>" (Bearer, Basic, …) and, for Basic, the
// decoded "user:password" and the password.
func credentialParts(v string) []string {
	parts := []string{v}
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || strings.ContainsAny(scheme, "=:") {
		return parts
	}
	token = strings.TrimSpace(token)
	parts = append(parts, token)
	if strings.EqualFold(scheme, "Basic") {
		if dec, err := base64.StdEncoding.DecodeString(token); err == nil {
			parts = append(parts, string(dec))
			if _, pw, ok := strings.Cut(string(dec), ":"); ok {
				parts = append(parts, pw)
			}
		}
	}
	return parts
}

// spellings returns v as it may appear in a document: as is, JSON-escaped
// (with and without HTML escaping) and URL-encoded. Values spelled with
// \uXXXX escapes are found by decoding the text first.
func spellings(v string) []string {
	out := []string{v}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) == nil {
			s := strings.TrimSuffix(b.String(), "\n")
			out = append(out, s[1:len(s)-1])
		}
	}
	return append(out, url.QueryEscape(v), url.PathEscape(v))
}

// has reports whether b contains a spelling of a secret.
func (s *secretSet) has(b []byte) bool {
	for _, sp := range s.spellings {
		if bytes.Contains(b, sp) {
			return true
		}
	}
	return false
}

// integerLike reports whether a spelling of a secret is made of digits and
// signs only, so that an integer could hold it.
func (s *secretSet) integerLike() bool {
	if s == nil {
		return false
	}
	for _, sp := range s.spellings {
		if len(bytes.Trim(sp, "0123456789+-")) == 0 {
			return true
		}
	}
	return false
}

// redact returns b with every spelling of a secret replaced, and how many
// were; b itself is returned when there are none.
func (s *secretSet) redact(b []byte) ([]byte, int) {
	if !s.has(b) {
		return b, 0
	}
	n := 0
	out := b
	for _, sp := range s.spellings {
		if c := bytes.Count(out, sp); c > 0 {
			n += c
			out = bytes.ReplaceAll(out, sp, []byte(credentialReplacement))
		}
	}
	return out, n
}

// redactText redacts text, looking through JSON string escapes too (up to
// three levels of JSON inside JSON): when a credential is only found once
// the text is unescaped, the unescaped text is returned with it redacted.
func (s *secretSet) redactText(b []byte) ([]byte, int) {
	if s == nil {
		return b, 0
	}
	if out, n := s.redact(b); n > 0 {
		return out, n
	}
	u := b
	for range 3 {
		next, ok := unescapeText(u)
		if !ok {
			break
		}
		if out, n := s.redact(next); n > 0 {
			return out, n
		}
		u = next
	}
	return b, 0
}

// unescapeText decodes one level of JSON string escapes in text, left to
// right (\", \\, \/ and \uXXXX, surrogate pairs joined; other escapes and
// anything malformed are kept as written). It reports whether anything was
// decoded.
func unescapeText(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '\\') < 0 {
		return b, false
	}
	out := make([]byte, 0, len(b))
	changed := false
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		switch c := b[i+1]; {
		case c == '"' || c == '\\' || c == '/':
			out = append(out, c)
			i++
			changed = true
		case c == 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				out = append(out, b[i])
				continue
			}
			i += 5
			if utf16.IsSurrogate(r) && i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
				if r2, ok := hex4(b, i+3); ok {
					r = utf16.DecodeRune(r, r2)
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
			changed = true
		default:
			out = append(out, b[i])
		}
	}
	return out, changed
}

// SecretsFromConfig collects the credentials a loaded toolgate.yaml makes
// toolgate hold: every target header value (except headers that never
// carry one, such as Accept or Content-Type), the password of every
// Postgres DSN (targets and store) and of a base_url's user info, the
// Slack tokens and signing secret, the decision webhook secret, the
// masking hash key and the recordings checkpoint key.
func SecretsFromConfig(c config.Config) []Secret {
	var out []Secret
	add := func(where, v string) {
		if v != "" {
			out = append(out, Secret{Where: where, Value: v})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Targets)) {
		sec := c.Targets[name].Section()
		if sec == nil {
			continue
		}
		for _, cr := range sec.Credentials() {
			where := "targets." + name + "." + cr.Key
			switch header, isHeader := strings.CutPrefix(cr.Key, "headers."); {
			case cr.In == config.CredentialDSNPassword:
				add(where, dsnPassword(cr.Value))
			case cr.In == config.CredentialURLPassword:
				if u, err := url.Parse(cr.Value); err == nil && u.User != nil {
					if pw, ok := u.User.Password(); ok {
						add(where, pw)
						add(where, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
					}
				}
			case !isHeader || !plainHeader(header):
				add(where, cr.Value)
			}
		}
	}
	add("store.dsn", dsnPassword(c.Store.DSN))
	if s := c.Approvals.Slack; s != nil {
		add("approvals.slack.bot_token", s.BotToken)
		add("approvals.slack.app_token", s.AppToken)
		add("approvals.slack.signing_secret", s.SigningSecret)
	}
	if d := c.Approvals.OnDecision; d != nil {
		add("approvals.on_decision.secret", d.Secret)
	}
	add("masking.hash_key", c.Masking.HashKey)
	add("recordings.checkpoint_key", c.Recordings.CheckpointKey)
	add("metrics.token", c.Metrics.Token)
	for _, k := range slices.Sorted(maps.Keys(c.Telemetry.OTLP.Headers)) {
		if !plainHeader(k) {
			add("telemetry.otlp.headers."+k, c.Telemetry.OTLP.Headers[k])
		}
	}
	if c.Auth.SCIM != nil {
		add("auth.scim.token", c.Auth.SCIM.Token)
	}
	if o := c.Console.OIDC; o != nil {
		add("console.oidc.client_secret", o.ClientSecret)
	}
	return out
}

// plainHeader reports whether a request header never carries a credential.
func plainHeader(name string) bool {
	switch strings.ToLower(name) {
	case "accept", "accept-encoding", "accept-language", "accept-charset", "content-type",
		"user-agent", "cache-control", "pragma", "connection", "x-requested-with":
		return true
	}
	return false
}

// dsnPassword returns the password a Postgres DSN holds, "" for none or a
// DSN that does not parse (the connector reports that one).
func dsnPassword(dsn string) string {
	if dsn == "" {
		return ""
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return cfg.Password
}

// RedactingWriter returns a writer that replaces every spelling of the
// secrets in what it writes before passing it to w, for log output (zap
// writes each entry with one Write, so a value is never split across two).
// With no secret long enough to redact it returns w itself.
func RedactingWriter(w io.Writer, secrets []Secret) io.Writer {
	set, _ := newSecretSet(secrets)
	if set == nil {
		return w
	}
	return redactingWriter{w: w, set: set}
}

type redactingWriter struct {
	w   io.Writer
	set *secretSet
}

// Write writes p with secrets redacted and reports len(p) on success.
func (r redactingWriter) Write(p []byte) (int, error) {
	out, _ := r.set.redact(p)
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
