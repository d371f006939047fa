package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
)

// errSyntax means the input is not JSON; the caller masks it as text.
var errSyntax = errors.New("not JSON")

// state is a partial path match: rule's segment seg applies to the
// children of the current container.
type state struct {
	rule, seg int32
}

// walker masks one JSON document in a single pass.
type walker struct {
	in      []byte
	pos     int
	out     []byte
	rules   []rule
	states  []state
	det     detectorSet
	stats   broker.MaskStats // nil: do not count
	hashKey []byte
	mac     hash.Hash
	hits    []hit
	dec     []byte // decoded string scratch
	buf     []byte // masked string scratch
	err     error  // an error from act, checked after each member
}

func (w *walker) count(key string) {
	if w.stats != nil {
		w.stats[key]++
	}
}

// run masks w.in into a new buffer.
func (w *walker) run() ([]byte, error) {
	w.out = make([]byte, 0, len(w.in)+len(w.in)/16+16)
	for i := range w.rules {
		w.states = append(w.states, state{rule: int32(i)})
	}
	w.skipWS()
	if w.pos >= len(w.in) {
		return nil, errSyntax
	}
	if err := w.value(0, 0, len(w.states)); err != nil {
		return nil, err
	}
	w.skipWS()
	if w.pos != len(w.in) {
		return nil, errSyntax
	}
	return w.out, nil
}

func (w *walker) skipWS() {
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

// value masks the value at w.pos; w.states[lo:hi] apply to its children.
func (w *walker) value(depth, lo, hi int) error {
	if w.pos >= len(w.in) {
		return errSyntax
	}
	switch c := w.in[w.pos]; {
	case c == '{':
		return w.object(depth+1, lo, hi)
	case c == '[':
		return w.array(depth+1, lo, hi)
	case c == '"':
		return w.str()
	case c == '-' || isDigit(c):
		st := w.pos
		if err := w.skipNumber(); err != nil {
			return err
		}
		num := w.in[st:w.pos]
		if w.det&detCard != 0 && isCardNumber(num) {
			w.count(statKey(detCard))
			w.out = append(w.out, '"')
			w.out = appendCardMask(w.out, num)
			w.out = append(w.out, '"')
			return nil
		}
		w.out = append(w.out, num...)
		return nil
	default:
		st := w.pos
		if err := w.skipLiteral(); err != nil {
			return err
		}
		w.out = append(w.out, w.in[st:w.pos]...)
		return nil
	}
}

// object masks an object; w.pos is at '{'.
func (w *walker) object(depth, lo, hi int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w (%d levels)", ErrTooDeep, MaxDepth)
	}
	w.pos++
	w.out = append(w.out, '{')
	w.skipWS()
	if w.pos < len(w.in) && w.in[w.pos] == '}' {
		w.pos++
		w.out = append(w.out, '}')
		return nil
	}
	wrote := false
	for {
		w.skipWS()
		if w.pos >= len(w.in) || w.in[w.pos] != '"' {
			return errSyntax
		}
		kst := w.pos
		kend, esc, hiBit, err := w.scanString()
		if err != nil {
			return err
		}
		raw := w.in[kst+1 : kend]
		key := raw
		if esc {
			if key, err = w.decode(raw); err != nil {
				return err
			}
		}
		childLo := len(w.states)
		best := -1
		if hi > lo {
			for _, s := range w.states[lo:hi] {
				r := &w.rules[s.rule]
				g := &r.segs[s.seg]
				if !g.matchKey(key) {
					continue
				}
				if int(s.seg) == len(r.segs)-1 {
					if best < 0 || int(s.rule) < best {
						best = int(s.rule)
					}
				} else {
					w.states = append(w.states, state{s.rule, s.seg + 1})
				}
			}
		}
		mark := len(w.out)
		if wrote {
			w.out = append(w.out, ',')
		}
		w.emitString(kst, kend, key, esc, hiBit)
		w.out = append(w.out, ':')
		w.pos = kend + 1
		w.skipWS()
		if w.pos >= len(w.in) || w.in[w.pos] != ':' {
			return errSyntax
		}
		w.pos++
		w.skipWS()
		if best >= 0 {
			if w.act(&w.rules[best], depth) {
				w.out = w.out[:mark]
			} else {
				wrote = true
			}
		} else {
			if err := w.value(depth, childLo, len(w.states)); err != nil {
				return err
			}
			wrote = true
		}
		w.states = w.states[:childLo]
		if w.err != nil {
			return w.err
		}
		w.skipWS()
		if w.pos >= len(w.in) {
			return errSyntax
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
		case '}':
			w.pos++
			w.out = append(w.out, '}')
			return nil
		default:
			return errSyntax
		}
	}
}

// array masks an array; w.pos is at '['.
func (w *walker) array(depth, lo, hi int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w (%d levels)", ErrTooDeep, MaxDepth)
	}
	w.pos++
	w.out = append(w.out, '[')
	w.skipWS()
	if w.pos < len(w.in) && w.in[w.pos] == ']' {
		w.pos++
		w.out = append(w.out, ']')
		return nil
	}
	wrote := false
	for i := 0; ; i++ {
		w.skipWS()
		childLo := len(w.states)
		best := -1
		if hi > lo {
			for _, s := range w.states[lo:hi] {
				r := &w.rules[s.rule]
				if !r.segs[s.seg].matchIndex(i) {
					continue
				}
				if int(s.seg) == len(r.segs)-1 {
					if best < 0 || int(s.rule) < best {
						best = int(s.rule)
					}
				} else {
					w.states = append(w.states, state{s.rule, s.seg + 1})
				}
			}
		}
		mark := len(w.out)
		if wrote {
			w.out = append(w.out, ',')
		}
		if best >= 0 {
			if w.act(&w.rules[best], depth) {
				w.out = w.out[:mark]
			} else {
				wrote = true
			}
		} else {
			if err := w.value(depth, childLo, len(w.states)); err != nil {
				return err
			}
			wrote = true
		}
		w.states = w.states[:childLo]
		if w.err != nil {
			return w.err
		}
		w.skipWS()
		if w.pos >= len(w.in) {
			return errSyntax
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
		case ']':
			w.pos++
			w.out = append(w.out, ']')
			return nil
		default:
			return errSyntax
		}
	}
}

// str masks a string value; w.pos is at its opening quote.
func (w *walker) str() error {
	st := w.pos
	end, esc, hiBit, err := w.scanString()
	if err != nil {
		return err
	}
	content := w.in[st+1 : end]
	if esc {
		if content, err = w.decode(content); err != nil {
			return err
		}
	}
	w.emitString(st, end, content, esc, hiBit)
	w.pos = end + 1
	return nil
}

// emitString writes the string in[st:end+1] whose decoded content is s,
// masking detector hits.
func (w *walker) emitString(st, end int, s []byte, esc, hiBit bool) {
	if w.det != 0 {
		w.hits = detect(s, w.det, w.hits[:0])
	}
	if len(w.hits) == 0 || w.det == 0 {
		w.hits = w.hits[:0]
		if !hiBit || utf8.Valid(s) {
			w.out = append(w.out, w.in[st:end+1]...)
			return
		}
		w.out = appendQuoted(w.out, s)
		return
	}
	for _, h := range w.hits {
		w.count(statKey(h.kind))
	}
	w.buf = maskHits(w.buf[:0], s, w.hits)
	w.out = appendQuoted(w.out, w.buf)
	w.hits = w.hits[:0]
}

// scanString finds the closing quote of the string at w.pos. It reports
// whether the string has escapes and whether it has non-ASCII bytes.
func (w *walker) scanString() (end int, esc, hiBit bool, err error) {
	in := w.in
	var or byte
	for j := w.pos + 1; j < len(in); j++ {
		c := in[j]
		or |= c
		switch {
		case c == '"':
			return j, esc, or >= 0x80, nil
		case c == '\\':
			esc = true
			j++
		case c < 0x20:
			return 0, false, false, errSyntax
		}
	}
	return 0, false, false, errSyntax
}

// decode unescapes a JSON string body into w.dec.
func (w *walker) decode(raw []byte) ([]byte, error) {
	d := w.dec[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			d = append(d, c)
			continue
		}
		i++
		if i >= len(raw) {
			return nil, errSyntax
		}
		switch raw[i] {
		case '"', '\\', '/':
			d = append(d, raw[i])
		case 'b':
			d = append(d, '\b')
		case 'f':
			d = append(d, '\f')
		case 'n':
			d = append(d, '\n')
		case 'r':
			d = append(d, '\r')
		case 't':
			d = append(d, '\t')
		case 'u':
			r, ok := hex4(raw, i+1)
			if !ok {
				return nil, errSyntax
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(raw, i+3); ok && i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if dr := utf16.DecodeRune(r, r2); dr != utf8.RuneError {
						r = dr
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			d = utf8.AppendRune(d, r)
		default:
			return nil, errSyntax
		}
	}
	w.dec = d
	return d, nil
}

// hex4 parses four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipNumber validates and skips a JSON number.
func (w *walker) skipNumber() error {
	in, i := w.in, w.pos
	if i < len(in) && in[i] == '-' {
		i++
	}
	if i >= len(in) {
		return errSyntax
	}
	if in[i] == '0' {
		i++
	} else if in[i] >= '1' && in[i] <= '9' {
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	} else {
		return errSyntax
	}
	if i < len(in) && in[i] == '.' {
		i++
		st := i
		for i < len(in) && isDigit(in[i]) {
			i++
		}
		if i == st {
			return errSyntax
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		st := i
		for i < len(in) && isDigit(in[i]) {
			i++
		}
		if i == st {
			return errSyntax
		}
	}
	w.pos = i
	return nil
}

// skipLiteral validates and skips true, false or null.
func (w *walker) skipLiteral() error {
	for _, lit := range [...]string{"true", "false", "null"} {
		if hasPrefix(w.in[w.pos:], lit) {
			w.pos += len(lit)
			return nil
		}
	}
	return errSyntax
}

// skipValue validates and skips the value at w.pos without output.
func (w *walker) skipValue(depth int) error {
	if w.pos >= len(w.in) {
		return errSyntax
	}
	switch c := w.in[w.pos]; {
	case c == '"':
		end, _, _, err := w.scanString()
		if err != nil {
			return err
		}
		if _, err := w.decode(w.in[w.pos+1 : end]); err != nil {
			return err
		}
		w.pos = end + 1
		return nil
	case c == '-' || isDigit(c):
		return w.skipNumber()
	case c == '{' || c == '[':
		depth++
		if depth > MaxDepth {
			return fmt.Errorf("%w (%d levels)", ErrTooDeep, MaxDepth)
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		w.pos++
		w.skipWS()
		if w.pos < len(w.in) && w.in[w.pos] == closer {
			w.pos++
			return nil
		}
		for {
			w.skipWS()
			if c == '{' {
				if w.pos >= len(w.in) || w.in[w.pos] != '"' {
					return errSyntax
				}
				if err := w.skipValue(depth); err != nil {
					return err
				}
				w.skipWS()
				if w.pos >= len(w.in) || w.in[w.pos] != ':' {
					return errSyntax
				}
				w.pos++
				w.skipWS()
			}
			if err := w.skipValue(depth); err != nil {
				return err
			}
			w.skipWS()
			if w.pos >= len(w.in) {
				return errSyntax
			}
			switch w.in[w.pos] {
			case ',':
				w.pos++
			case closer:
				w.pos++
				return nil
			default:
				return errSyntax
			}
		}
	default:
		return w.skipLiteral()
	}
}

// act applies rule r to the value at w.pos, skipping it. It reports
// whether the value (and its key) must be dropped. An error is left in
// w.err.
func (w *walker) act(r *rule, depth int) (drop bool) {
	st := w.pos
	if err := w.skipValue(depth); err != nil {
		w.err = err
		return false
	}
	v := w.in[st:w.pos]
	w.count(r.stat)
	switch r.action {
	case ActionDrop:
		return true
	case ActionNull:
		w.out = append(w.out, "null"...)
		return false
	}
	switch v[0] {
	case 'n':
		w.out = append(w.out, "null"...)
	case '"':
		s, err := w.decode(v[1 : len(v)-1])
		if err != nil {
			w.err = err
			return false
		}
		w.out = appendQuoted(w.out, w.actOnText(r.action, s))
	case '{', '[', 't', 'f':
		if r.action == ActionHash {
			w.out = appendQuoted(w.out, w.hashToken(v))
		} else {
			w.out = append(w.out, `"[REDACTED]"`...)
		}
	default: // a number
		if r.action == ActionEmail {
			w.out = append(w.out, `"[REDACTED]"`...)
		} else {
			w.out = appendQuoted(w.out, w.actOnText(r.action, v))
		}
	}
	return false
}

// actOnText applies a string action (redact, last4, email, hash) to text.
func (w *walker) actOnText(action string, s []byte) []byte {
	switch action {
	case ActionLast4:
		return last4(s)
	case ActionEmail:
		return emailMask(s)
	case ActionHash:
		return w.hashToken(s)
	}
	return []byte("[REDACTED]")
}

// hashToken returns "h_" and the first 12 hex digits of HMAC-SHA256(v).
func (w *walker) hashToken(v []byte) []byte {
	if w.mac == nil {
		w.mac = hmac.New(sha256.New, w.hashKey)
	}
	w.mac.Reset()
	w.mac.Write(v)
	var sum [sha256.Size]byte
	out := make([]byte, 2, 14)
	copy(out, "h_")
	return hex.AppendEncode(out, w.mac.Sum(sum[:0])[:6])
}

// last4 keeps the last four characters of s and stars the rest. Four
// characters or fewer are all starred: nothing is revealed whole.
func last4(s []byte) []byte {
	n := utf8.RuneCount(s)
	out := make([]byte, 0, len(s))
	if n <= 4 {
		for ; n > 0; n-- {
			out = append(out, '*')
		}
		return out
	}
	i := 0
	for k := 0; k < n-4; k++ {
		_, size := utf8.DecodeRune(s[i:])
		i += size
		out = append(out, '*')
	}
	return append(out, s[i:]...)
}

// emailMask keeps the first character of the local part and the domain:
// "jane@example.com" becomes "j***@example.com". Anything that is not an
// address is redacted.
func emailMask(s []byte) []byte {
	at := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			at = i
			break
		}
	}
	if at <= 0 || at == len(s)-1 {
		return []byte("[REDACTED]")
	}
	_, size := utf8.DecodeRune(s)
	out := make([]byte, 0, size+4+len(s)-at)
	out = append(out, s[:size]...)
	out = append(out, "***"...)
	return append(out, s[at:]...)
}

// appendQuoted appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendQuoted(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
