package tools

import (
	"fmt"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a tool declaration: the file, the line
// in it, a JSON-pointer location (like /sql/statement) and the reason.
type Problem struct {
	File string
	// Line is the line of Path in File (1-based; 0 when unknown).
	Line   int
	Path   string
	Reason string
}

// String returns "file:line: path: reason".
func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "/"
	}
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	return loc + ": " + path + ": " + p.Reason
}

// LoadError lists every problem found while loading tool declarations, not
// just the first.
type LoadError struct {
	Problems []Problem
}

// Error returns every problem, one per line after a summary line.
func (e *LoadError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("1 problem in tool declarations:")
	} else {
		fmt.Fprintf(&b, "%d problems in tool declarations:", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// problems collects the problems of one file.
type problems struct {
	file string
	list []Problem
	// lines maps the JSON pointer of each key and array item to its line.
	lines map[string]int
}

// addf records a problem at path.
func (ps *problems) addf(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: ps.file, Line: ps.line(path), Path: path, Reason: fmt.Sprintf(format, args...)})
}

// line returns the line of path or of its nearest parent that was seen; 1
// for the document itself.
func (ps *problems) line(path string) int {
	for {
		if l, ok := ps.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '/')
		if i < 0 {
			return 1
		}
		path = path[:i]
	}
}

// pointerToken escapes one JSON pointer token (RFC 6901).
func pointerToken(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// pointer joins a parent path and a key into a JSON pointer.
func pointer(parent, key string) string { return parent + "/" + pointerToken(key) }
