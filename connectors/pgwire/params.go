package pgwire

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/toolgate/toolgate/broker"
)

// forwardedParams are the startup parameters passed on to the server as the
// client sent them. Others (options, search_path, role settings) are
// dropped: they could change which tables a bare name means or which role
// runs the statements. client_encoding, DateStyle, IntervalStyle and
// extra_float_digits are checked or pinned by upstreamParams.
var forwardedParams = []string{"application_name", "TimeZone"}

// clientParam returns a startup parameter, its name matched without case.
func clientParam(params map[string]string, name string) (string, bool) {
	for k, v := range params {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// upstreamParams are the startup parameters of the upstream session.
// Lock 1 reads statements as the server does only if the server decodes
// them as UTF-8 with standard conforming strings, so those are pinned; the
// text forms toolgate converts to binary for the client (dates, intervals,
// floats, bytea) are pinned to the forms it parses; the target's
// statement_timeout and read_only apply.
func upstreamParams(client map[string]string, cfg Config) map[string]string {
	out := map[string]string{
		"client_encoding":             "UTF8",
		"standard_conforming_strings": "on",
		"DateStyle":                   "ISO, MDY",
		"IntervalStyle":               "postgres",
		"bytea_output":                "hex",
	}
	for _, k := range forwardedParams {
		if v, ok := clientParam(client, k); ok {
			out[k] = v
		}
	}
	if v, ok := clientParam(client, "DateStyle"); ok && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(v)), "ISO") {
		out["DateStyle"] = v // the field order only changes how input is read
	}
	if v, ok := clientParam(client, "extra_float_digits"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 1 && n <= 3 {
			out["extra_float_digits"] = v // 1 or more: exact output
		}
	}
	if cfg.StatementTimeout > 0 {
		out["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	if cfg.ReadOnly {
		out["default_transaction_read_only"] = "on"
	}
	return out
}

// encodingName normalizes an encoding name as PostgreSQL does: letters and
// digits only, lower case.
func encodingName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func isUTF8(enc string) bool {
	n := encodingName(enc)
	return n == "utf8" || n == "unicode"
}

// checkStartup refuses a startup packet that asks for a client encoding
// other than UTF8. SQL_ASCII (what libpq picks under the C locale) asks
// for no conversion at all and is served as UTF8: the bytes toolgate
// parses are then exactly the bytes the server parses.
func checkStartup(params map[string]string) error {
	v, ok := clientParam(params, "client_encoding")
	if !ok || isUTF8(v) || encodingName(v) == "sqlascii" {
		return nil
	}
	return broker.Errorf(broker.CodeForbidden, "client_encoding %q is not supported: toolgate reads statements as UTF-8 only; connect with client_encoding=UTF8 (PGCLIENTENCODING=UTF8)", v)
}

// watchParam checks a server parameter the proxy's reading of the stream
// depends on; an error ends the session.
func (s *session) watchParam(name, value string) error {
	if s.srv.lock1Off {
		return nil
	}
	var bad bool
	switch strings.ToLower(name) {
	case "client_encoding":
		bad = !isUTF8(value)
	case "standard_conforming_strings":
		bad = value != "on"
	case "default_transaction_read_only":
		bad = s.srv.cfg.ReadOnly && value != "on"
	}
	if !bad {
		return nil
	}
	return broker.Errorf(broker.CodeForbidden, "the session's %s became %q; toolgate ends sessions whose %s is not what it pinned", name, value, name)
}

// endForParam ends the session for a parameter watchParam refused.
func (s *session) endForParam(err error) {
	s.setReason(fmt.Sprintf("session setting changed: %s", safeMessage(err)))
	s.fatal("57P01", err)
}
