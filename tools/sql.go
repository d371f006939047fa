package tools

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// spliceRule ends every message about text that looks like argument splicing.
const spliceRule = `SQL arguments are bound via "args" and $n placeholders ($1 binds the first entry of args), never spliced into the statement text`

// maxPlaceholder is the highest $n accepted (PostgreSQL's bind limit).
const maxPlaceholder = 65535

// sqlSpec is a checked SQL operation.
type sqlSpec struct {
	statement string
	args      []string
	maxRows   int
}

// parseSQL checks the SQL operation at base (a JSON pointer: "/sql", or
// "/preview/sql" for a declared preview query) with the allowed keys.
func parseSQL(ps *problems, raw json.RawMessage, base string, keys []string, args argNames) *sqlSpec {
	fields, ok := object(ps, raw, base, keys)
	if !ok {
		return nil
	}
	sp := &sqlSpec{}
	sp.statement, _ = stringField(ps, fields, base, "statement", true)

	argsOK := true
	if rawArgs, ok := fields["args"]; ok {
		var list []json.RawMessage
		if strict(rawArgs, &list) != nil || list == nil {
			ps.addf(base+"/args", "must be an array of argument names, got %s", jsonKind(rawArgs))
			argsOK = false
		}
		for i, item := range list {
			at := pointer(base+"/args", strconv.Itoa(i))
			var name string
			if strict(item, &name) != nil {
				ps.addf(at, "must be an argument name (a string), got %s", jsonKind(item))
				argsOK = false
				continue
			}
			if name == "" {
				ps.addf(at, "must not be empty")
				argsOK = false
				continue
			}
			args.checkArg(ps, at, name, "argument")
			sp.args = append(sp.args, name)
		}
	}
	if rawMax, ok := fields["max_rows"]; ok {
		if v, ok := wholeNumber(rawMax, 32); ok {
			sp.maxRows = int(v)
		} else {
			ps.addf(base+"/max_rows", "must be a whole number ≥ 0 (0 means the target's default)")
		}
	}
	if sp.statement != "" {
		names := map[string]bool{}
		for _, a := range sp.args {
			names[a] = true
		}
		for p := range args.props {
			names[p] = true
		}
		checkStatement(ps, base, sp.statement, len(sp.args), argsOK, names)
	}
	return sp
}

// wholeNumber decodes raw as an integer ≥ 0 that fits in bits.
func wholeNumber(raw json.RawMessage, bits int) (int64, bool) {
	var n json.Number
	if strict(raw, &n) != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(n.String(), 10, bits)
	return v, err == nil && v >= 0
}

// sqlScan is what scanning a statement found.
type sqlScan struct {
	placeholders map[int]bool
	// inLiteral are $n found inside string literals, where they are text.
	inLiteral []string
	named     []string
	badNumber []string
	// extra is the offset of the ';' followed by a second statement, or -1.
	extra        int
	unterminated string
	unterminAt   int
}

// formatVerb matches printf-style verbs not followed by a word character
// (so LIKE patterns such as '%son' stay legal).
var formatVerb = regexp.MustCompile(`%[svdq](?:[^A-Za-z0-9_]|$)`)

// checkStatement reports splicing, several statements and placeholder
// mistakes in statement. nargs is len(args); names are the argument names.
func checkStatement(ps *problems, base, stmt string, nargs int, argsOK bool, names map[string]bool) {
	at := base + "/statement"
	// Placeholder counting is left out when splicing was reported: the
	// count mismatch would only repeat it.
	before := len(ps.list)
	for _, pat := range []string{"{{", "${"} {
		if strings.Contains(stmt, pat) {
			ps.addf(at, "contains the template marker %q: %s", pat, spliceRule)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if strings.Contains(stmt, "{"+name+"}") && !strings.Contains(stmt, "{{"+name+"}}") && !strings.Contains(stmt, "${"+name+"}") {
			ps.addf(at, "contains {%s}, which looks like the argument %q spliced into the text: %s", name, name, spliceRule)
		}
	}
	if m := formatVerb.FindString(stmt); m != "" {
		ps.addf(at, "contains the format verb %q: %s", m[:2], spliceRule)
	}

	sc := scanSQL(stmt)
	if sc.unterminated != "" {
		ps.addf(at, "has an unterminated %s starting at byte %d", sc.unterminated, sc.unterminAt)
		return
	}
	if sc.extra >= 0 {
		ps.addf(at, "holds more than one statement (text follows the \";\" at byte %d): a tool runs exactly one statement", sc.extra)
	}
	for _, n := range sc.named {
		ps.addf(at, "uses the named placeholder %q: %s", n, spliceRule)
	}
	for _, b := range sc.badNumber {
		ps.addf(at, "uses the placeholder %q: placeholders run from $1 to $%d", b, maxPlaceholder)
	}
	max := 0
	for n := range sc.placeholders {
		if n > max {
			max = n
		}
	}
	var missing []string
	for i := 1; i <= max; i++ {
		if !sc.placeholders[i] {
			missing = append(missing, "$"+strconv.Itoa(i))
		}
	}
	if len(missing) > 0 {
		ps.addf(at, "uses placeholders up to $%d but not %s: placeholders must run $1..$n without gaps", max, strings.Join(missing, ", "))
	}
	if argsOK && max != nargs && len(ps.list) == before {
		msg := fmt.Sprintf("the statement uses %s but args lists %s: $n binds the n-th entry of args, so they must match", countPlaceholders(max), plural(nargs, "argument"))
		if len(sc.inLiteral) > 0 {
			msg += fmt.Sprintf(" (%s inside a quoted string is text, not a placeholder: write $1, not '$1')", sc.inLiteral[0])
		}
		ps.addf(base+"/args", "%s", msg)
	}
}

func countPlaceholders(n int) string {
	switch n {
	case 0:
		return "no placeholders"
	case 1:
		return "$1"
	default:
		return fmt.Sprintf("$1..$%d", n)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func isIdent(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// scanSQL lexes a PostgreSQL/SQLite statement just enough to find
// placeholders, named placeholders and statement boundaries outside string
// literals, quoted identifiers, dollar-quoted strings and comments.
func scanSQL(s string) sqlScan {
	l := &sqlLexer{s: s, sc: sqlScan{placeholders: map[int]bool{}, extra: -1}, semi: -1, named: map[string]bool{}}
	for i := 0; i >= 0 && i < len(s); {
		i = l.token(i)
	}
	sort.Strings(l.sc.inLiteral)
	return l.sc
}

// sqlLexer is scanSQL's state.
type sqlLexer struct {
	s  string
	sc sqlScan
	// semi is the offset of the first ';', -1 before one.
	semi  int
	named map[string]bool
}

// token reads the token at i and returns where the next one starts, or -1
// when the scan ends there (an unterminated token, a last-line comment).
func (l *sqlLexer) token(i int) int {
	s, c := l.s, l.s[i]
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		return i + 1
	case c == '-' && i+1 < len(s) && s[i+1] == '-':
		end := strings.IndexByte(s[i:], '\n')
		if end < 0 {
			return -1
		}
		return i + end + 1
	case c == '/' && i+1 < len(s) && s[i+1] == '*':
		return l.blockComment(i)
	case c == ';':
		if l.semi < 0 {
			l.semi = i
		}
		return i + 1
	}
	// Anything else is part of a statement: a ';' before it separated two.
	if l.semi >= 0 && l.sc.extra < 0 {
		l.sc.extra = l.semi
	}
	switch {
	case c == '\'':
		return l.stringLiteral(i)
	case c == '"' || c == '`':
		end := strings.IndexByte(s[i+1:], c)
		if end < 0 {
			return l.unterminated("quoted identifier", i)
		}
		return i + end + 2
	case c == '$' && (i == 0 || !isIdent(s[i-1])):
		return l.dollar(i)
	case (c == ':' || c == '@') && i+1 < len(s) && isIdentStart(s[i+1]) && (i == 0 || (s[i-1] != ':' && !isIdent(s[i-1]))):
		return l.namedPlaceholder(i)
	case isIdent(c):
		for i < len(s) && isIdent(s[i]) {
			i++
		}
		return i
	}
	return i + 1
}

// unterminated records a token that never ends and ends the scan.
func (l *sqlLexer) unterminated(what string, at int) int {
	l.sc.unterminated, l.sc.unterminAt = what, at
	return -1
}

// blockComment skips a /* */ comment, which nests.
func (l *sqlLexer) blockComment(i int) int {
	s := l.s
	depth, j := 1, i+2
	for j < len(s) && depth > 0 {
		switch {
		case strings.HasPrefix(s[j:], "/*"):
			depth++
			j += 2
		case strings.HasPrefix(s[j:], "*/"):
			depth--
			j += 2
		default:
			j++
		}
	}
	if depth > 0 {
		return l.unterminated("comment", i)
	}
	return j
}

// stringLiteral skips a '...' literal (” escapes a quote; in an E'...'
// literal a backslash escapes too), noting the $n written inside it.
func (l *sqlLexer) stringLiteral(i int) int {
	s := l.s
	backslash := i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i < 2 || !isIdent(s[i-2]))
	for j := i + 1; j < len(s); j++ {
		switch {
		case backslash && s[j] == '\\':
			j++
		case s[j] == '\'' && j+1 < len(s) && s[j+1] == '\'':
			j++
		case s[j] == '\'':
			l.literal(s[i+1 : j])
			return j + 1
		}
	}
	return l.unterminated("string literal", i)
}

// dollar reads a $n placeholder or skips a $tag$ ... $tag$ string.
func (l *sqlLexer) dollar(i int) int {
	s := l.s
	j := i + 1
	if j < len(s) && s[j] >= '0' && s[j] <= '9' {
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil || n < 1 || n > maxPlaceholder {
			l.sc.badNumber = append(l.sc.badNumber, s[i:j])
		} else {
			l.sc.placeholders[n] = true
		}
		return j
	}
	for j < len(s) && isIdent(s[j]) && s[j] != '$' {
		j++
	}
	if j < len(s) && s[j] == '$' && (j == i+1 || isIdentStart(s[i+1])) {
		tag := s[i : j+1]
		end := strings.Index(s[j+1:], tag)
		if end < 0 {
			return l.unterminated("dollar-quoted string", i)
		}
		l.literal(s[j+1 : j+1+end])
		return j + 1 + end + len(tag)
	}
	return i + 1
}

// namedPlaceholder notes a :name or @name placeholder, once per name.
func (l *sqlLexer) namedPlaceholder(i int) int {
	s := l.s
	j := i + 1
	for j < len(s) && isIdent(s[j]) && s[j] != '$' {
		j++
	}
	if name := s[i:j]; !l.named[name] {
		l.named[name] = true
		l.sc.named = append(l.sc.named, name)
	}
	return j
}

// literal notes each $n inside quoted text, where it is text, not a
// placeholder.
func (l *sqlLexer) literal(body string) {
	for i := 0; i+1 < len(body); i++ {
		if body[i] == '$' && body[i+1] >= '1' && body[i+1] <= '9' && (i == 0 || !isIdent(body[i-1])) {
			j := i + 1
			for j < len(body) && body[j] >= '0' && body[j] <= '9' {
				j++
			}
			l.sc.inLiteral = append(l.sc.inLiteral, body[i:j])
		}
	}
}
