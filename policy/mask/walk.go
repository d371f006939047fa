package mask

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/bits"
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
	ruleN   []int            // hits per rule index, folded into stats at the end
	detN    [8]int           // hits per detector bit index
	hashKey []byte
	mac     hash.Hash
	sum     []byte // HMAC output scratch
	hits    []hit
	dec     []byte     // decoded string scratch
	buf     []byte     // masked string scratch
	err     error      // an error from act, checked after each member
	sec     *secretSet // credentials redacted by value; nil for none
	secN    int        // credentials redacted
}

// countDetector counts one hit of detector d.
func (w *walker) countDetector(d detectorSet) {
	w.detN[bits.TrailingZeros8(uint8(d))]++
}

// flushStats folds the counters into w.stats.
func (w *walker) flushStats() {
	if w.stats == nil {
		return
	}
	for i, n := range w.ruleN {
		if n > 0 {
			w.stats[w.rules[i].stat] += n
		}
	}
	for i, n := range w.detN {
		if n > 0 {
			w.stats[statKey(detectorSet(1)<<i)] += n
		}
	}
	if w.secN > 0 {
		w.stats[credentialStat] += w.secN
	}
}

// run masks w.in into a new buffer.
func (w *walker) run() ([]byte, error) {
	w.out = make([]byte, 0, len(w.in)+len(w.in)/16+16)
	w.ruleN = make([]int, len(w.rules))
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
	w.flushStats()
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
			w.countDetector(detCard)
			w.out = append(w.out, '"')
			w.out = appendCardMask(w.out, intPart(num))
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
	if empty, err := w.open(depth, '}'); empty || err != nil {
		return err
	}
	wrote := false
	for {
		w.skipWS()
		if w.pos >= len(w.in) || w.in[w.pos] != '"' {
			return errSyntax
		}
		kst := w.pos
		kend, key, esc, hiBit, err := w.readString()
		if err != nil {
			return err
		}
		childLo := len(w.states)
		best := -1
		if hi > lo {
			for _, s := range w.states[lo:hi] {
				if w.rules[s.rule].segs[s.seg].matchKey(key) {
					best = w.step(s, best)
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
		kept, err := w.member(best, depth, childLo, mark)
		if err != nil {
			return err
		}
		wrote = wrote || kept
		if done, err := w.next('}'); done || err != nil {
			return err
		}
	}
}

// open enters the object or array at w.pos, depth levels deep, and writes
// its opening byte; when closer follows at once the container is empty
// (empty is true) and the closer is consumed and written too.
func (w *walker) open(depth int, closer byte) (empty bool, err error) {
	if depth > MaxDepth {
		return false, fmt.Errorf("%w (%d levels)", ErrTooDeep, MaxDepth)
	}
	w.out = append(w.out, w.in[w.pos])
	w.pos++
	w.skipWS()
	if w.pos < len(w.in) && w.in[w.pos] == closer {
		w.pos++
		w.out = append(w.out, closer)
		return true, nil
	}
	return false, nil
}

// step follows a state whose segment matched the current key or index: on
// the rule's last segment the rule applies here (the lowest rule index wins
// and is returned as best); otherwise the next segment becomes a child state.
func (w *walker) step(s state, best int) int {
	if int(s.seg) == len(w.rules[s.rule].segs)-1 {
		if best < 0 || int(s.rule) < best {
			return int(s.rule)
		}
		return best
	}
	w.states = append(w.states, state{s.rule, s.seg + 1})
	return best
}

// member writes one object member's or array element's value: masked by
// rule best when best >= 0, else walked with the child states from
// childLo. A dropped value is cut back to mark (its separator and key
// included). kept reports whether anything was written.
func (w *walker) member(best, depth, childLo, mark int) (kept bool, err error) {
	if best >= 0 {
		if w.act(best, depth) {
			w.out = w.out[:mark]
		} else {
			kept = true
		}
	} else {
		if err := w.value(depth, childLo, len(w.states)); err != nil {
			return false, err
		}
		kept = true
	}
	w.states = w.states[:childLo]
	return kept, w.err
}

// next consumes the separator after a member: ',' to go on, or closer to
// end the object or array (written to the output; done is then true).
func (w *walker) next(closer byte) (done bool, err error) {
	w.skipWS()
	if w.pos >= len(w.in) {
		return false, errSyntax
	}
	switch w.in[w.pos] {
	case ',':
		w.pos++
		return false, nil
	case closer:
		w.pos++
		w.out = append(w.out, closer)
		return true, nil
	default:
		return false, errSyntax
	}
}

// array masks an array; w.pos is at '['.
func (w *walker) array(depth, lo, hi int) error {
	if empty, err := w.open(depth, ']'); empty || err != nil {
		return err
	}
	wrote := false
	for i := 0; ; i++ {
		w.skipWS()
		childLo := len(w.states)
		best := -1
		if hi > lo {
			for _, s := range w.states[lo:hi] {
				if w.rules[s.rule].segs[s.seg].matchIndex(i) {
					best = w.step(s, best)
				}
			}
		}
		mark := len(w.out)
		if wrote {
			w.out = append(w.out, ',')
		}
		kept, err := w.member(best, depth, childLo, mark)
		if err != nil {
			return err
		}
		wrote = wrote || kept
		if done, err := w.next(']'); done || err != nil {
			return err
		}
	}
}

// str masks a string value; w.pos is at its opening quote.
func (w *walker) str() error {
	st := w.pos
	end, content, esc, hiBit, err := w.readString()
	if err != nil {
		return err
	}
	w.emitString(st, end, content, esc, hiBit)
	w.pos = end + 1
	return nil
}

// emitString writes the string in[st:end+1] whose decoded content is s,
// masking detector hits.
func (w *walker) emitString(st, end int, s []byte, esc, hiBit bool) {
	if w.sec != nil {
		if red, n := w.sec.redactText(s); n > 0 {
			w.secN += n
			w.emitChanged(red)
			return
		}
	}
	// A string holding escaped JSON text ("{\"card\":\"\\u0034...") is
	// looked at through its inner \uXXXX escapes too.
	if w.det != 0 && esc && bytes.Contains(s, []byte(`\u`)) {
		if u, ok := unescapeU(s); ok {
			if w.hits = detect(u, w.det, w.hits[:0]); len(w.hits) > 0 {
				w.emitMasked(u)
				return
			}
		}
	}
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
	w.emitMasked(s)
}

// emitChanged writes s, a string already changed from the input, with its
// detector hits masked.
func (w *walker) emitChanged(s []byte) {
	if w.det != 0 {
		w.hits = detect(s, w.det, w.hits[:0])
	}
	if len(w.hits) > 0 {
		w.emitMasked(s)
		return
	}
	w.out = appendQuoted(w.out, s)
}

// emitMasked writes s with w.hits, its detector hits, masked and counted,
// and empties w.hits.
func (w *walker) emitMasked(s []byte) {
	for _, h := range w.hits {
		w.countDetector(h.kind)
	}
	w.buf = maskHits(w.buf[:0], s, w.hits)
	w.out = appendQuoted(w.out, w.buf)
	w.hits = w.hits[:0]
}

// readString scans the string at w.pos (see scanString) and returns its
// content s, decoded when it has escapes; w.pos does not move.
func (w *walker) readString() (end int, s []byte, esc, hiBit bool, err error) {
	end, esc, hiBit, err = w.scanString()
	if err != nil {
		return 0, nil, false, false, err
	}
	s = w.in[w.pos+1 : end]
	if esc {
		if s, err = w.decode(s); err != nil {
			return 0, nil, false, false, err
		}
	}
	return end, s, esc, hiBit, nil
}

// scanString finds the closing quote of the string at w.pos. It reports
// whether the string has escapes and whether it has non-ASCII bytes.
func (w *walker) scanString() (end int, esc, hiBit bool, err error) {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	in := w.in
	var or uint64
	j := w.pos + 1
	// Eight bytes at a time while none is a quote, a backslash or a
	// control character.
	for ; j+8 <= len(in); j += 8 {
		x := binary.LittleEndian.Uint64(in[j:])
		q := x ^ (ones * '"')
		b := x ^ (ones * '\\')
		if ((q-ones)&^q|(b-ones)&^b|(x-ones*0x20)&^x)&highs != 0 {
			break
		}
		or |= x
	}
	hi := or&highs != 0
	for ; j < len(in); j++ {
		c := in[j]
		switch {
		case c == '"':
			return j, esc, hi, nil
		case c == '\\':
			esc = true
			j++
		case c < 0x20:
			return 0, false, false, errSyntax
		case c >= 0x80:
			hi = true
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

// intPart returns the digits of a number token's integer part.
func intPart(num []byte) []byte {
	if len(num) > 0 && num[0] == '-' {
		num = num[1:]
	}
	n := 0
	for n < len(num) && isDigit(num[n]) {
		n++
	}
	return num[:n]
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
func (w *walker) act(ri int, depth int) (drop bool) {
	r := &w.rules[ri]
	w.ruleN[ri]++
	st := w.pos
	if st < len(w.in) && w.in[st] == '"' {
		end, s, _, _, err := w.readString()
		if err != nil {
			w.err = err
			return false
		}
		w.pos = end + 1
		switch r.action {
		case ActionDrop, ActionDeny:
			return true
		case ActionNull:
			w.out = append(w.out, "null"...)
			return false
		}
		w.buf = w.appendAction(w.buf[:0], r.action, s)
		w.out = appendQuoted(w.out, w.buf)
		return false
	}
	if err := w.skipValue(depth); err != nil {
		w.err = err
		return false
	}
	v := w.in[st:w.pos]
	switch r.action {
	case ActionDrop, ActionDeny:
		return true
	case ActionNull:
		w.out = append(w.out, "null"...)
		return false
	}
	switch v[0] {
	case 'n':
		w.out = append(w.out, "null"...)
	case '{', '[', 't', 'f':
		if r.action == ActionHash {
			w.out = append(w.out, '"')
			w.out = w.appendHash(w.out, v)
			w.out = append(w.out, '"')
		} else {
			w.out = append(w.out, `"[REDACTED]"`...)
		}
	default: // a number
		if r.action == ActionEmail {
			w.out = append(w.out, `"[REDACTED]"`...)
		} else {
			w.buf = w.appendAction(w.buf[:0], r.action, v)
			w.out = appendQuoted(w.out, w.buf)
		}
	}
	return false
}

// appendAction appends the result of a string action (redact, last4,
// email, hash) on text s.
func (w *walker) appendAction(dst []byte, action string, s []byte) []byte {
	switch action {
	case ActionLast4:
		return appendLast4(dst, s)
	case ActionEmail:
		return appendEmailMask(dst, s)
	case ActionHash:
		return w.appendHash(dst, s)
	}
	return append(dst, "[REDACTED]"...)
}

// actOnText applies a string action to text, returning a new slice.
func (w *walker) actOnText(action string, s []byte) []byte {
	return w.appendAction(nil, action, s)
}

// appendHash appends "h_" and the first 12 hex digits of HMAC-SHA256(v).
func (w *walker) appendHash(dst, v []byte) []byte {
	if w.mac == nil {
		w.mac = hmac.New(sha256.New, w.hashKey)
	}
	w.mac.Reset()
	w.mac.Write(v)
	w.sum = w.mac.Sum(w.sum[:0])
	dst = append(dst, "h_"...)
	return hex.AppendEncode(dst, w.sum[:6])
}

// last4 keeps the last four characters of s and stars the rest. Four
// characters or fewer are all starred: nothing is revealed whole.
func appendLast4(out, s []byte) []byte {
	n := utf8.RuneCount(s)
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
func appendEmailMask(out, s []byte) []byte {
	at := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			at = i
			break
		}
	}
	if at <= 0 || at == len(s)-1 {
		return append(out, "[REDACTED]"...)
	}
	_, size := utf8.DecodeRune(s)
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
