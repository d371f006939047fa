package mask

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// detectorSet is a bit set of detectors.
type detectorSet uint8

// The detectors, one bit each.
const (
	detCard detectorSet = 1 << iota
	detEmail
	detSSN
	detIBAN
	detJWT
	detSecret
	detPrivateKey

	detAll = detCard | detEmail | detSSN | detIBAN | detJWT | detSecret | detPrivateKey
	// detResultDefault is what results get unless a tool or target
	// switches something: every detector but email.
	detResultDefault = detAll &^ detEmail
)

// Detector names as they appear in configuration and in MaskStats.
const (
	DetectorCard       = "card"
	DetectorEmail      = "email"
	DetectorSSN        = "ssn"
	DetectorIBAN       = "iban"
	DetectorJWT        = "jwt"
	DetectorSecret     = "secret"
	DetectorPrivateKey = "private_key"
)

// Detectors returns the names of every detector, in a fixed order.
func Detectors() []string {
	return []string{DetectorCard, DetectorEmail, DetectorSSN, DetectorIBAN, DetectorJWT, DetectorSecret, DetectorPrivateKey}
}

// detectorByName returns the bit for a detector name.
func detectorByName(name string) (detectorSet, bool) {
	switch name {
	case DetectorCard:
		return detCard, true
	case DetectorEmail:
		return detEmail, true
	case DetectorSSN:
		return detSSN, true
	case DetectorIBAN:
		return detIBAN, true
	case DetectorJWT:
		return detJWT, true
	case DetectorSecret:
		return detSecret, true
	case DetectorPrivateKey:
		return detPrivateKey, true
	}
	return 0, false
}

// statKey is the MaskStats key of a single detector bit.
func statKey(d detectorSet) string {
	switch d {
	case detCard:
		return "detector:card"
	case detEmail:
		return "detector:email"
	case detSSN:
		return "detector:ssn"
	case detIBAN:
		return "detector:iban"
	case detJWT:
		return "detector:jwt"
	case detSecret:
		return "detector:secret"
	default:
		return "detector:private_key"
	}
}

// replacement is the text a detector hit of kind d becomes (cards excepted).
func replacement(d detectorSet) string {
	switch d {
	case detEmail:
		return "[REDACTED:email]"
	case detSSN:
		return "[REDACTED:ssn]"
	case detIBAN:
		return "[REDACTED:iban]"
	case detJWT:
		return "[REDACTED:jwt]"
	case detSecret:
		return "[REDACTED:secret]"
	default:
		return "[REDACTED:private_key]"
	}
}

// apply merges switches into s.
func (s detectorSet) apply(switches map[string]bool) detectorSet {
	for name, on := range switches {
		d, ok := detectorByName(name)
		if !ok {
			continue // Validate rejects unknown names; tools are checked by CheckTool.
		}
		if on {
			s |= d
		} else {
			s &^= d
		}
	}
	return s
}

// minHitLen is the length of the shortest text any detector can match
// (an email address such as "a@b.cd").
const minHitLen = 6

// hit is one detector match: s[start:end] is sensitive.
type hit struct {
	start, end int
	kind       detectorSet
}

// Character classes for the scanner.
const (
	clWord  = 1 << iota // [A-Za-z0-9_]
	clDigit             // [0-9]
	clUpper             // [A-Z]
	clLocal             // characters of an email local part
	clHost              // characters of an email domain
	clB64               // base64url alphabet
	clTok               // generic token characters [A-Za-z0-9_-]
	clTrig              // a byte a word-start detector can begin with
)

// classes is the byte class table. It is a constant-initialized array that
// nothing writes to.
var classes = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		isAlnum := b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		if isAlnum || b == '_' {
			t[c] |= clWord
		}
		if b >= '0' && b <= '9' {
			t[c] |= clDigit
		}
		if b >= 'A' && b <= 'Z' {
			t[c] |= clUpper
		}
		if isAlnum || b == '.' || b == '_' || b == '%' || b == '+' || b == '-' {
			t[c] |= clLocal
		}
		if isAlnum || b == '.' || b == '-' {
			t[c] |= clHost
		}
		if isAlnum || b == '-' || b == '_' {
			t[c] |= clB64 | clTok
		}
		if b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' || strings.IndexByte("begrstx", b) >= 0 {
			t[c] |= clTrig
		}
	}
	return t
}()

func isWord(b byte) bool  { return classes[b]&clWord != 0 }
func isDigit(b byte) bool { return b >= '0' && b <= '9' }
func isUpper(b byte) bool { return b >= 'A' && b <= 'Z' }

// detect appends to hits every detector match in s for the detectors in
// set, in order and without overlaps. Card numbers and SSNs are looked for
// at the start of every digit run, whatever precedes it ('a'||card is
// "a4242…"); the other detectors start at word boundaries.
func detect(s []byte, set detectorSet, hits []hit) []hit {
	n := len(s)
	if n < minHitLen {
		return hits
	}
	digits := set&(detCard|detSSN) != 0
	last := 0  // end of the previous hit: later hits never start before it
	noJWT := 0 // a JWT header scan failed on a run that ends here
	for i := 0; i < n; {
		c := s[i]
		if classes[c]&clWord == 0 {
			switch {
			case c == '@' && set&detEmail != 0:
				if st, en, ok := emailAt(s, i, last); ok {
					hits = append(hits, hit{st, en, detEmail})
					i, last = en, en
					continue
				}
			case c == '-' && set&detPrivateKey != 0:
				if en, ok := privateKeyAt(s, i); ok {
					hits = append(hits, hit{i, en, detPrivateKey})
					i, last = en, en
					continue
				}
			}
			i++
			continue
		}
		// i starts a word, or a digit run inside one.
		if isDigit(c) {
			if digits {
				if h, en := digitsAt(s, i, set, hits); en > 0 {
					hits = h
					i, last = en, en
					continue
				}
			}
		} else if c&0x80 != 0 || classes[c]&clTrig != 0 {
			if st, en, kind := wordAt(s, i, set, &noJWT); kind != 0 {
				hits = append(hits, hit{st, en, kind})
				i, last = en, en
				continue
			}
		}
		i = skipWord(s, i, digits)
	}
	return hits
}

// skipWord returns the end of the word whose byte at i was tried or, when
// digits, the first digit after i inside the word that follows a non-digit
// (a digit run to try).
func skipWord(s []byte, i int, digits bool) int {
	n := len(s)
	for i++; i < n; i++ {
		cl := classes[s[i]]
		if cl&clWord == 0 {
			return i
		}
		if cl&clDigit != 0 && digits && !isDigit(s[i-1]) {
			return i
		}
	}
	return i
}

// digitsAt runs the card and SSN detectors on the digit run starting at
// s[i], appending their hits; end is where the hits end, 0 for none.
func digitsAt(s []byte, i int, set detectorSet, hits []hit) (out []hit, end int) {
	if set&detCard != 0 {
		if en, ok := cardAt(s, i); ok {
			return append(hits, hit{i, en, detCard}), en
		}
		if e := runEnd(s, i); e-i > maxCardDigits {
			if out, ok := cardRun(s, i, e, hits); ok {
				return out, e
			}
		}
	}
	if set&detSSN != 0 {
		if en, ok := ssnAt(s, i); ok {
			return append(hits, hit{i, en, detSSN}), en
		}
	}
	return hits, 0
}

// runEnd returns the end of the digit run at s[i].
func runEnd(s []byte, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// wordAt runs the detectors that start at a word boundary, digits aside.
func wordAt(s []byte, i int, set detectorSet, noJWT *int) (start, end int, kind detectorSet) {
	c := s[i]
	if set&detSecret != 0 {
		if st, en, ok := secretAt(s, i); ok {
			return st, en, detSecret
		}
	}
	if c == 'e' && set&detJWT != 0 && i >= *noJWT {
		en, ok, runEnd := jwtAt(s, i)
		if ok {
			return i, en, detJWT
		}
		// Every "eyJ" inside the same base64url run fails the same way.
		*noJWT = runEnd
	}
	if isUpper(c) && set&detIBAN != 0 {
		if en, ok := ibanAt(s, i); ok {
			return i, en, detIBAN
		}
	}
	return 0, 0, 0
}

// boundaryAt reports whether position j ends a token: the end of s or a
// byte that cannot continue a word.
func boundaryAt(s []byte, j int) bool { return j >= len(s) || !isWord(s[j]) }

// maxCardDigits is the length of the longest card number.
const maxCardDigits = 19

// cardAt finds a card number starting at s[i], which starts a digit run:
// 13 to 19 digits, optionally grouped by single spaces or dashes, passing
// the Luhn check and followed by anything but a digit. It prefers the
// longest candidate ending at a group boundary. The Luhn sums of every
// prefix are kept by digit parity, so no digit is stored.
func cardAt(s []byte, i int) (int, bool) {
	// plain[p] sums the digits at even (p=0) or odd (p=1) positions from
	// the left; doubled[p] sums their Luhn doubles.
	var plain, doubled [2]int
	nd, best := 0, -1
	ok := func(k int) bool {
		if k < 13 || k > 19 {
			return false
		}
		// Counting from the right, the last digit (position k-1) is not
		// doubled, so positions of the other parity are.
		last := (k - 1) & 1
		return (plain[last]+doubled[1-last])%10 == 0
	}
	j := i
	for j < len(s) && nd < 64 {
		c := s[j]
		if isDigit(c) {
			d := int(c - '0')
			plain[nd&1] += d
			d *= 2
			if d > 9 {
				d -= 9
			}
			doubled[nd&1] += d
			nd++
			j++
			continue
		}
		if (c == ' ' || c == '-') && j+1 < len(s) && isDigit(s[j+1]) {
			if ok(nd) {
				best = j
			}
			j++
			continue
		}
		break
	}
	if (j >= len(s) || !isDigit(s[j])) && ok(nd) {
		best = j
	}
	return best, best >= 0
}

// cardLengths are the card lengths cardRun tries, most common first.
var cardLengths = [...]int{16, 15, 14, 19, 18, 17, 13}

// cardRun appends the cards of the digit run s[i:e], longer than one card,
// when the whole run splits into numbers of 13 to 19 digits that each pass
// the Luhn check: cards glued together (format('%s%s', a, b),
// string_agg(card, ”)), one hit per card. A run that does not split so is
// left alone, so long ordinary numbers (an IBAN's digits, a numeric) are
// not masked. It keeps the prefix Luhn sums modulo 10 by parity, doubled
// and not, so each candidate costs a few subtractions.
func cardRun(s []byte, i, e int, hits []hit) ([]hit, bool) {
	n := e - i
	buf := make([]byte, 5*(n+1))
	plain := [2][]byte{buf[0 : n+1], buf[n+1 : 2*(n+1)]}
	doubled := [2][]byte{buf[2*(n+1) : 3*(n+1)], buf[3*(n+1) : 4*(n+1)]}
	splits := buf[4*(n+1):] // splits[a] == 1: s[i+a:e] splits into cards
	for j := 0; j < n; j++ {
		d := s[i+j] - '0'
		f := 2 * d
		if f > 9 {
			f -= 9
		}
		for p := 0; p < 2; p++ {
			plain[p][j+1], doubled[p][j+1] = plain[p][j], doubled[p][j]
		}
		plain[j&1][j+1] = (plain[j&1][j] + d) % 10
		doubled[j&1][j+1] = (doubled[j&1][j] + f) % 10
	}
	valid := func(a, b int) bool {
		// The last digit (b-1) is not doubled; the other parity is.
		p := (b - 1) & 1
		sum := int(plain[p][b]) - int(plain[p][a]) + int(doubled[1-p][b]) - int(doubled[1-p][a])
		return (sum+20)%10 == 0
	}
	next := func(a int) int {
		for _, k := range cardLengths {
			if a+k <= n && splits[a+k] == 1 && valid(a, a+k) {
				return k
			}
		}
		return 0
	}
	splits[n] = 1
	for a := n - 13; a >= 0; a-- {
		if next(a) > 0 {
			splits[a] = 1
		}
	}
	if splits[0] == 0 {
		return hits, false
	}
	for a := 0; a < n; {
		k := next(a)
		hits = append(hits, hit{i + a, i + a + k, detCard})
		a += k
	}
	return hits, true
}

// luhn reports whether the digits pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// isCardNumber reports whether a JSON number token is a card number: its
// integer part (sign, fraction and exponent aside) is 13 to 19 digits
// passing Luhn, or a longer run of such numbers glued together (see
// cardRun).
// Fractions and exponents do not make a card safe to show.
func isCardNumber(num []byte) bool {
	if len(num) < 13 {
		return false
	}
	if num[0] == '-' {
		num = num[1:]
	}
	n := 0
	for n < len(num) && isDigit(num[n]) {
		n++
	}
	if n > maxCardDigits {
		_, ok := cardRun(num, 0, n, nil)
		return ok
	}
	if n < 13 {
		return false
	}
	var d [19]byte
	for k := 0; k < n; k++ {
		d[k] = num[k] - '0'
	}
	return luhn(d[:n])
}

// ssnAt finds a US social security number AAA-GG-SSSS (dashes or spaces,
// used consistently, not followed by a digit) starting at s[i], which
// starts a digit run, excluding numbers the SSA never issues: area 000,
// 666 or 900-999, group 00, serial 0000.
func ssnAt(s []byte, i int) (int, bool) {
	if len(s)-i < 11 {
		return 0, false
	}
	p := s[i : i+11]
	sep := p[3]
	if sep != '-' && sep != ' ' || p[6] != sep {
		return 0, false
	}
	for _, k := range [...]int{0, 1, 2, 4, 5, 7, 8, 9, 10} {
		if !isDigit(p[k]) {
			return 0, false
		}
	}
	if i+11 < len(s) && isDigit(s[i+11]) {
		return 0, false
	}
	area := string(p[0:3])
	if area == "000" || area == "666" || p[0] == '9' {
		return 0, false
	}
	if p[4] == '0' && p[5] == '0' || p[7] == '0' && p[8] == '0' && p[9] == '0' && p[10] == '0' {
		return 0, false
	}
	return i + 11, true
}

// ibanAt finds an IBAN starting at s[i]: two capital letters, two check
// digits and 11 to 30 capital letters or digits, optionally grouped by
// single spaces, passing the ISO 13616 mod-97 check.
func ibanAt(s []byte, i int) (int, bool) {
	if len(s)-i < 15 || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0, false
	}
	var chars [34]byte
	var ends [34]int
	var counts [34]int
	nc, ng := 0, 0
	j := i
	for j < len(s) {
		c := s[j]
		if isDigit(c) || isUpper(c) {
			if nc == len(chars) {
				return 0, false
			}
			chars[nc] = c
			nc++
			j++
			continue
		}
		if c == ' ' && j+1 < len(s) && (isDigit(s[j+1]) || isUpper(s[j+1])) && ng < len(ends) {
			ends[ng], counts[ng] = j, nc
			ng++
			j++
			continue
		}
		break
	}
	if boundaryAt(s, j) {
		ends[ng], counts[ng] = j, nc
		ng++
	}
	for g := ng - 1; g >= 0; g-- {
		k := counts[g]
		if k >= 15 && k <= 34 && mod97(chars[:k]) == 1 {
			return ends[g], true
		}
	}
	return 0, false
}

// mod97 computes the IBAN checksum remainder of the rearranged account.
func mod97(c []byte) int {
	r := 0
	add := func(b byte) {
		if isDigit(b) {
			r = (r*10 + int(b-'0')) % 97
		} else {
			r = (r*100 + int(b-'A'+10)) % 97
		}
	}
	for _, b := range c[4:] {
		add(b)
	}
	for _, b := range c[:4] {
		add(b)
	}
	return r
}

// maxJWTHeader bounds the encoded JWT header the detector decodes.
const maxJWTHeader = 2048

// jwtAt finds a JSON Web Token starting at s[i]: three base64url segments
// separated by dots whose first decodes to a JSON object with "alg".
func jwtAt(s []byte, i int) (end int, ok bool, runEnd int) {
	if len(s)-i < 10 || s[i+1] != 'y' || s[i+2] != 'J' {
		return 0, false, 0
	}
	j := i
	var dots [2]int
	for k := 0; k < 3; k++ {
		st := j
		for j < len(s) && classes[s[j]]&clB64 != 0 {
			j++
		}
		if k == 0 && (j-st > maxJWTHeader || j >= len(s) || s[j] != '.') {
			return 0, false, j
		}
		if k < 2 {
			if j == st || j >= len(s) || s[j] != '.' {
				return 0, false, 0
			}
			dots[k] = j
			j++
		}
	}
	if !boundaryAt(s, j) && s[j] != '=' {
		return 0, false, 0
	}
	head := s[i:dots[0]]
	var buf [maxJWTHeader]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], head)
	if err != nil {
		return 0, false, 0
	}
	h := buf[:n]
	if !gjson.ValidBytes(h) {
		return 0, false, 0
	}
	r := gjson.ParseBytes(h)
	if !r.IsObject() || !r.Get("alg").Exists() {
		return 0, false, 0
	}
	return j, true, 0
}

// secretAt finds a cloud, SaaS or toolgate credential starting at s[i].
// For "Bearer <token>" only the token is the hit.
func secretAt(s []byte, i int) (start, end int, ok bool) {
	rest := s[i:]
	switch s[i] {
	case 'A':
		if len(rest) >= 20 && (hasPrefix(rest, "AKIA") || hasPrefix(rest, "ASIA")) &&
			runOf(rest[4:20], func(b byte) bool { return isDigit(b) || isUpper(b) }) && boundaryAt(s, i+20) {
			return i, i + 20, true
		}
	case 'B', 'b':
		if hasPrefix(rest, "Bearer ") || hasPrefix(rest, "bearer ") {
			st := i + 7
			for st < len(s) && s[st] == ' ' {
				st++
			}
			en := st
			for en < len(s) && isBearerChar(s[en]) {
				en++
			}
			if en-st >= 20 {
				return st, en, true
			}
		}
	case 'x':
		if len(rest) > 5 && hasPrefix(rest, "xox") && (rest[3] == 'a' || rest[3] == 'b' || rest[3] == 'p' || rest[3] == 'r') && rest[4] == '-' {
			if en := tokenEnd(s, i+5); en-(i+5) >= 10 {
				return i, en, true
			}
		}
	case 'g':
		if hasPrefix(rest, "github_pat_") {
			if en := tokenEnd(s, i+11); en-(i+11) >= 20 {
				return i, en, true
			}
		}
		if len(rest) > 4 && rest[1] == 'h' && rest[3] == '_' {
			switch rest[2] {
			case 'p', 'o', 's', 'u', 'r':
				if en := tokenEnd(s, i+4); en-(i+4) >= 20 {
					return i, en, true
				}
			}
		}
	case 's', 'r':
		if len(rest) > 8 && rest[1] == 'k' && hasPrefix(rest[2:], "_live_") {
			if en := tokenEnd(s, i+8); en-(i+8) >= 10 {
				return i, en, true
			}
		}
	case 't':
		if hasPrefix(rest, "tgk_") {
			if en := tokenEnd(s, i+4); en-(i+4) >= 12 {
				return i, en, true
			}
		} else if hasPrefix(rest, "tg_") {
			if en := tokenEnd(s, i+3); en-(i+3) >= 16 {
				return i, en, true
			}
		}
	}
	return 0, 0, false
}

// tokenEnd returns the end of the run of token characters from j.
func tokenEnd(s []byte, j int) int {
	for j < len(s) && classes[s[j]]&clTok != 0 {
		j++
	}
	return j
}

// isBearerChar reports whether b may appear in an RFC 6750 bearer token.
func isBearerChar(b byte) bool {
	return classes[b]&clTok != 0 || b == '.' || b == '~' || b == '+' || b == '/' || b == '='
}

// hasPrefix reports whether s starts with p.
func hasPrefix(s []byte, p string) bool { return len(s) >= len(p) && string(s[:len(p)]) == p }

// runOf reports whether f holds for every byte of s.
func runOf(s []byte, f func(byte) bool) bool {
	for _, b := range s {
		if !f(b) {
			return false
		}
	}
	return true
}

// emailAt finds an email address around the '@' at s[at]. The local part
// is scanned backwards but never before floor (the end of the last hit).
func emailAt(s []byte, at, floor int) (start, end int, ok bool) {
	st := at
	for st > floor && classes[s[st-1]]&clLocal != 0 {
		st--
	}
	for st < at && s[st] == '.' {
		st++
	}
	if st == at {
		return 0, 0, false
	}
	en := at + 1
	lastDot, labelLen := -1, 0
	for en < len(s) && classes[s[en]]&clHost != 0 {
		if s[en] == '.' {
			if labelLen == 0 {
				break
			}
			lastDot, labelLen = en, 0
		} else {
			labelLen++
		}
		en++
	}
	// A trailing dot ends a sentence, not the domain.
	if en > at+1 && s[en-1] == '.' {
		en--
		lastDot = -1
		for k := en - 1; k > at; k-- {
			if s[k] == '.' {
				lastDot = k
				break
			}
		}
	}
	if lastDot < 0 || lastDot == at+1 || en-lastDot-1 < 2 {
		return 0, 0, false
	}
	for k := lastDot + 1; k < en; k++ {
		if c := s[k]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return 0, 0, false
		}
	}
	return st, en, true
}

// privateKeyAt finds a PEM private key block starting at s[i]. A block
// without its END line runs to the end of s: failing closed.
func privateKeyAt(s []byte, i int) (int, bool) {
	rest := s[i:]
	if !hasPrefix(rest, "-----BEGIN ") {
		return 0, false
	}
	// The label ends at the next "-----", within a line.
	k := 11
	for k < len(rest) && k < 80 && rest[k] != '-' && rest[k] != '\n' {
		k++
	}
	label := rest[11:k]
	if !hasPrefix(rest[k:], "-----") || len(label) < 11 || string(label[len(label)-11:]) != "PRIVATE KEY" {
		return 0, false
	}
	for j := k + 5; j+9 <= len(rest); j++ {
		if rest[j] == '-' && hasPrefix(rest[j:], "-----END ") {
			e := j + 9
			for e < len(rest) && rest[e] != '-' && rest[e] != '\n' {
				e++
			}
			if hasPrefix(rest[e:], "-----") {
				return i + e + 5, true
			}
		}
	}
	return len(s), true
}

// maskHits returns s with every hit replaced, appended to dst.
func maskHits(dst, s []byte, hits []hit) []byte {
	prev := 0
	for _, h := range hits {
		dst = append(dst, s[prev:h.start]...)
		if h.kind == detCard {
			dst = appendCardMask(dst, s[h.start:h.end])
		} else {
			dst = append(dst, replacement(h.kind)...)
		}
		prev = h.end
	}
	return append(dst, s[prev:]...)
}

// appendCardMask appends the card's digits as stars except the last four.
func appendCardMask(dst, card []byte) []byte {
	n := 0
	for _, c := range card {
		if isDigit(c) {
			n++
		}
	}
	var last4 [4]byte
	k := 4
	for j := len(card) - 1; j >= 0 && k > 0; j-- {
		if isDigit(card[j]) {
			k--
			last4[k] = card[j]
		}
	}
	for ; n > 4; n-- {
		dst = append(dst, '*')
	}
	return append(dst, last4[:]...)
}

// unescapeU decodes the \uXXXX escapes in text (surrogate pairs joined,
// anything malformed kept as written), so that a value spelled with JSON
// escapes in text that is not JSON is still seen by the detectors. It
// reports whether anything was decoded.
func unescapeU(s []byte) ([]byte, bool) {
	if bytes.Index(s, []byte(`\u`)) < 0 {
		return s, false
	}
	out := make([]byte, 0, len(s))
	changed := false
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+5 < len(s) && s[i+1] == 'u' {
			if r, ok := hex4(s, i+2); ok {
				i += 5
				if utf16.IsSurrogate(r) {
					if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
						if r2, ok := hex4(s, i+3); ok {
							if dr := utf16.DecodeRune(r, r2); dr != utf8.RuneError {
								r = dr
								i += 6
							}
						}
					}
				}
				out = utf8.AppendRune(out, r)
				changed = true
				continue
			}
		}
		out = append(out, s[i])
	}
	return out, changed
}

// maskTextBytes masks text with the detectors in set, looking through
// \uXXXX escapes. It returns the hits' kinds for counting, and whether s
// changed.
func maskTextBytes(s []byte, set detectorSet) ([]byte, []hit, bool) {
	if u, ok := unescapeU(s); ok {
		if hits := detect(u, set, nil); len(hits) > 0 {
			return maskHits(make([]byte, 0, len(u)), u, hits), hits, true
		}
	}
	hits := detect(s, set, nil)
	if len(hits) == 0 {
		return s, nil, false
	}
	return maskHits(make([]byte, 0, len(s)), s, hits), hits, true
}
