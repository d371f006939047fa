package recordings

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
)

// appendEvent appends the canonical JSON of ev to dst without reflection:
// the members of broker.Event in the byte order of their encoded keys,
// each encoded exactly as encoding/json encodes it (HTML-safe strings,
// omitempty), so the result equals sorting the keys of json.Marshal(ev).
// Raw members (args, result) that are already canonical are copied as they
// are; others take the json.Marshal path. ev.Time must be in UTC.
func appendEvent(dst []byte, ev *broker.Event) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	dst = appendStringMember(dst, `"approval_id":`, ev.ApprovalID)
	if len(ev.Args) > 0 {
		dst = append(dst, `"args":`...)
		if dst, err = appendRaw(dst, ev.Args); err != nil {
			return dst, err
		}
		dst = append(dst, ',')
	}
	dst = appendStringMember(dst, `"args_hash":`, ev.ArgsHash)
	dst = appendStringMember(dst, `"auth_method":`, ev.AuthMethod)
	dst = appendIntMember(dst, `"bytes":`, ev.Bytes)
	dst = appendStringMember(dst, `"decision":`, ev.Decision)
	if len(ev.Detail) > 0 {
		raw, err := json.Marshal(ev.Detail)
		if err != nil {
			return dst, err
		}
		dst = append(dst, `"detail":`...)
		if dst, _, err = sortValue(dst, raw, 0); err != nil {
			return dst, err
		}
		dst = append(dst, ',')
	}
	dst = appendStringMember(dst, `"door":`, ev.Door)
	if dst, err = appendFloatMember(dst, `"duration_ms":`, ev.DurationMS); err != nil {
		return dst, err
	}
	dst = appendStringMember(dst, `"error":`, ev.Error)
	dst = appendStringMember(dst, `"error_code":`, ev.ErrorCode)
	if dst, err = appendFloatMember(dst, `"exec_ms":`, ev.ExecMS); err != nil {
		return dst, err
	}
	dst = appendStringMember(dst, `"graph":`, ev.Graph)
	dst = append(dst, `"id":`...)
	dst = append(appendString(dst, ev.ID), ',')
	dst = append(dst, `"kind":`...)
	dst = append(appendString(dst, string(ev.Kind)), ',')
	if len(ev.Masked) > 0 {
		dst = append(dst, `"masked":`...)
		dst = append(appendCounts(dst, ev.Masked), ',')
	}
	dst = appendStringMember(dst, `"node":`, ev.Node)
	dst = appendStringMember(dst, `"policy_version":`, ev.PolicyVersion)
	dst = appendStringMember(dst, `"principal":`, ev.Principal)
	if len(ev.Result) > 0 {
		dst = append(dst, `"result":`...)
		if dst, err = appendRaw(dst, ev.Result); err != nil {
			return dst, err
		}
		dst = append(dst, ',')
	}
	dst = appendIntMember(dst, `"rows":`, ev.Rows)
	dst = appendStringMember(dst, `"rule":`, ev.Rule)
	dst = appendStringMember(dst, `"run":`, ev.Run)
	dst = appendStringMember(dst, `"status":`, string(ev.Status))
	dst = appendStringMember(dst, `"target":`, ev.Target)
	dst = appendStringMember(dst, `"thread":`, ev.Thread)
	if dst, err = appendTime(dst, ev.Time); err != nil {
		return dst, err
	}
	dst = append(dst, ',')
	dst = appendStringMember(dst, `"token_id":`, ev.TokenID)
	dst = appendStringMember(dst, `"tool":`, ev.Tool)
	dst = appendStringMember(dst, `"tool_call_id":`, ev.ToolCallID)
	dst = appendStringMember(dst, `"trace_id":`, ev.TraceID)
	// Every member ends with a comma; "id", "kind" and "time" are always
	// there, so the last byte is one.
	dst[len(dst)-1] = '}'
	return dst, nil
}

// appendStringMember appends key and s and a comma, unless s is empty.
func appendStringMember(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, key...)
	return append(appendString(dst, s), ',')
}

// appendIntMember appends key and n and a comma, unless n is zero.
func appendIntMember(dst []byte, key string, n int) []byte {
	if n == 0 {
		return dst
	}
	dst = append(dst, key...)
	return append(strconv.AppendInt(dst, int64(n), 10), ',')
}

// appendFloatMember appends key and f as encoding/json writes a float64,
// and a comma, unless f is zero.
func appendFloatMember(dst []byte, key string, f float64) ([]byte, error) {
	if f == 0 {
		return dst, nil
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, errors.New("canonical: unsupported float value " + strconv.FormatFloat(f, 'g', -1, 64))
	}
	dst = append(dst, key...)
	format := byte('f')
	if abs := math.Abs(f); abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Like encoding/json: e-09 becomes e-9.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return append(dst, ','), nil
}

// appendTime appends the "time" member as time.Time.MarshalJSON writes it.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, errors.New("canonical: time year outside of range [0,9999]")
	}
	dst = append(dst, `"time":"`...)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

// appendCounts appends m as an object sorted by encoded key.
func appendCounts(dst []byte, m broker.MaskStats) []byte {
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	if simpleKeys(keys) {
		// Keys of bytes above '"' that need no escape sort as their
		// encodings do.
		slices.Sort(keys)
	} else {
		slices.SortFunc(keys, func(a, b string) int {
			return bytes.Compare(appendString(nil, a), appendString(nil, b))
		})
	}
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(appendString(dst, k), ':')
		dst = strconv.AppendInt(dst, int64(m[k]), 10)
	}
	return append(dst, '}')
}

// simpleKeys reports whether every key is printable ASCII above '"' that
// encoding/json writes unescaped.
func simpleKeys(keys []string) bool {
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			if c := k[i]; c <= '"' || !htmlSafe(c) {
				return false
			}
		}
	}
	return true
}

// htmlSafe reports whether encoding/json writes the ASCII byte c as it is
// in a string with HTML escaping on.
func htmlSafe(c byte) bool {
	return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

const hexDigits = "0123456789abcdef"

// appendString appends s as encoding/json encodes a string with HTML
// escaping on: \b \f \n \r \t \" \\ as such, other control bytes and < > &
// as \u00XX, U+2028 and U+2029 as \u2028 and \u2029, and invalid UTF-8 as
// \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe(c) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendRaw appends the canonical form of the raw JSON value raw: raw
// itself when it is already canonical (valid, compact, nothing
// encoding/json would HTML-escape, every object's keys sorted), which is
// what the masker produces; otherwise json.Marshal's compact form with
// keys sorted. Invalid JSON is an error.
func appendRaw(dst, raw []byte) ([]byte, error) {
	sorted := true
	end, ok := scanCanonical(raw, 0, 0, &sorted)
	if ok && end == len(raw) {
		if sorted {
			return append(dst, raw...), nil
		}
		// Valid and compact, only out of order (a result's columns):
		// json.Marshal would return it unchanged.
		dst, _, err := sortValue(dst, raw, 0)
		return dst, err
	}
	compact, err := json.Marshal(json.RawMessage(raw))
	if err != nil {
		return dst, err
	}
	dst, end, err = sortValue(dst, compact, 0)
	if err == nil && end != len(compact) {
		err = errors.New("canonical: trailing data")
	}
	return dst, err
}

// maxCanonicalDepth bounds scanCanonical's recursion; deeper values take
// the slow path.
const maxCanonicalDepth = 64

// scanCanonical checks the value at src[i:] and returns the index after
// it and whether it is valid JSON that json.Marshal leaves unchanged
// (compact, nothing to HTML-escape); it clears *sorted when some object's
// keys are out of order. It is conservative: false sends the value down the
// json.Marshal path, which decides.
func scanCanonical(src []byte, i, depth int, sorted *bool) (int, bool) {
	if i >= len(src) || depth > maxCanonicalDepth {
		return i, false
	}
	switch c := src[i]; {
	case c == '{':
		i++
		if i < len(src) && src[i] == '}' {
			return i + 1, true
		}
		var prev []byte
		for {
			ks := i
			ke, ok := scanString(src, i)
			if !ok {
				return i, false
			}
			if prev != nil && bytes.Compare(prev, src[ks:ke]) > 0 {
				*sorted = false
			}
			prev = src[ks:ke]
			if ke >= len(src) || src[ke] != ':' {
				return ke, false
			}
			if i, ok = scanCanonical(src, ke+1, depth+1, sorted); !ok || i >= len(src) {
				return i, false
			}
			switch src[i] {
			case ',':
				i++
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '[':
		i++
		if i < len(src) && src[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanCanonical(src, i, depth+1, sorted); !ok || i >= len(src) {
				return i, false
			}
			switch src[i] {
			case ',':
				i++
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '"':
		return scanString(src, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(src, i)
	case c == 't':
		return scanLiteral(src, i, "true")
	case c == 'f':
		return scanLiteral(src, i, "false")
	case c == 'n':
		return scanLiteral(src, i, "null")
	}
	return i, false
}

// scanString checks the string at src[i:]: valid escapes, no control
// bytes, and nothing encoding/json's compaction would rewrite (< > & and
// U+2028/U+2029, whose encodings start with 0xE2).
func scanString(src []byte, i int) (int, bool) {
	if i >= len(src) || src[i] != '"' {
		return i, false
	}
	for i++; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(src) {
				return i, false
			}
			switch src[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(src) {
					return i, false
				}
				for _, h := range src[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		case c < 0x20, c == '<', c == '>', c == '&', c == 0xE2:
			return i, false
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanNumber checks the JSON number at src[i:].
func scanNumber(src []byte, i int) (int, bool) {
	if src[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(src) && src[i] == '0' {
		i++
	} else if !digits() {
		return i, false
	}
	if i < len(src) && src[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}

func scanLiteral(src []byte, i int, lit string) (int, bool) {
	if !bytes.HasPrefix(src[i:], []byte(lit)) {
		return i, false
	}
	return i + len(lit), true
}
