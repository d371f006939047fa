package postgres

import "strings"

// fastVerbs are the statements that cannot change session state by
// themselves (a set_config call inside them is checked separately).
var fastVerbs = map[string]bool{
	"select": true, "with": true, "values": true, "table": true,
	"insert": true, "update": true, "delete": true, "merge": true,
	"show": true, "explain": true,
}

// sessionSafe reports whether stmt can run on the fast path: its first
// keyword, after comments and opening parentheses, is one of fastVerbs, and
// it names no set_config (nor uses a U& identifier that could spell it).
// A false answer is always safe: the statement takes the transaction path
// and its connection is dropped.
func sessionSafe(stmt string) bool {
	i := 0
	for i < len(stmt) {
		switch c := stmt[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(':
			i++
		case strings.HasPrefix(stmt[i:], "--"):
			end := strings.IndexByte(stmt[i:], '\n')
			if end < 0 {
				return false
			}
			i += end + 1
		case strings.HasPrefix(stmt[i:], "/*"):
			// Comments nest in PostgreSQL.
			depth := 0
			for i < len(stmt) {
				if strings.HasPrefix(stmt[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(stmt[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			if depth != 0 {
				return false
			}
		default:
			j := i
			for j < len(stmt) && (stmt[j]|0x20 >= 'a' && stmt[j]|0x20 <= 'z') {
				j++
			}
			if !fastVerbs[strings.ToLower(stmt[i:j])] {
				return false
			}
			lower := strings.ToLower(stmt)
			return !strings.Contains(lower, "set_config") && !strings.Contains(lower, "u&")
		}
	}
	return false
}
