package scaffold

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Table is what introspection found about one table.
type Table struct {
	// Name is the name as given; Ident is it quoted for SQL.
	Name, Ident string
	Comment     string
	Columns     []Column
	// Samples holds up to SampleRows values per column, as text, for the
	// detectors only.
	Samples map[string][]string
}

// Column is one column of a table.
type Column struct {
	Name     string
	Ident    string // quoted for SQL
	DBType   string // as the database names it
	Nullable bool
	// Default is true when the database fills the column itself (a
	// default, an identity, a generated value, SQLite's rowid alias).
	Default bool
	PK      bool
	// Ref is "table.column" for a foreign key.
	Ref     string
	Comment string
}

// SampleRows is how many rows a table's sample holds.
const SampleRows = 20

// Detector names the detectors that fire on a value (card, email, ssn,
// iban, jwt, secret, private_key).
type Detector interface {
	Detect(value string) []string
}

// Options shape the drafts of a table.
type Options struct {
	Target string
	// Writes adds insert and update tools.
	Writes bool
	// SchemaRef, when set, becomes each draft's "$schema".
	SchemaRef string
	Detector  Detector
}

// Note is something the user should read about a draft, never a value.
type Note struct {
	File string
	Text string
}

// sensitiveNames suggests a mask action by column name.
var sensitiveNames = []struct {
	re     *regexp.Regexp
	action string
	why    string
}{
	{regexp.MustCompile(`card|ccnum|cc_num|\bpan\b`), "last4", "a card number"},
	{regexp.MustCompile(`iban|account_?num|acct_?num`), "last4", "an account number"},
	{regexp.MustCompile(`ssn|social_?sec|national_?id|tax_?id`), "redact", "an identity number"},
	{regexp.MustCompile(`e_?mail`), "email", "an email address"},
	{regexp.MustCompile(`phone|mobile|\btel\b|fax`), "redact", "a phone number"},
	{regexp.MustCompile(`token|secret|passw|passwd|\bpwd\b|api_?key|credential|private_?key`), "redact", "a secret"},
	{regexp.MustCompile(`birth|\bdob\b`), "redact", "a birth date"},
}

// detectorActions is the mask a detector hit suggests.
var detectorActions = map[string]string{
	"card": "last4", "iban": "last4", "email": "email", "ssn": "redact",
	"jwt": "redact", "secret": "redact", "private_key": "redact",
}

// suggestMask returns the action for a column and why, or "".
func suggestMask(c Column, samples []string, d Detector) (action, why string) {
	name := strings.ToLower(c.Name)
	for _, s := range sensitiveNames {
		if s.re.MatchString(name) {
			action, why = s.action, "its name looks like "+s.why
			break
		}
	}
	if d == nil {
		return action, why
	}
	found := map[string]bool{}
	for _, v := range samples {
		for _, det := range d.Detect(v) {
			found[det] = true
		}
	}
	var names []string
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if action == "" {
			action = detectorActions[n]
		}
		if why != "" {
			why += "; "
		}
		why += fmt.Sprintf("the %s detector fired on the sample", n)
	}
	return action, why
}

// jsonType maps a database type to a JSON Schema type and format ("" type:
// any JSON value).
func jsonType(dbType string) (typ, format string) {
	t := strings.ToLower(dbType)
	switch {
	case strings.HasSuffix(t, "[]"):
		return "", ""
	case strings.Contains(t, "json"):
		return "", ""
	case strings.Contains(t, "bool"):
		return "boolean", ""
	case strings.Contains(t, "int") || t == "oid" || t == "serial" || t == "bigserial":
		return "integer", ""
	case strings.Contains(t, "numeric") || strings.Contains(t, "decimal") || strings.Contains(t, "real") ||
		strings.Contains(t, "floa") || strings.Contains(t, "doub") || strings.Contains(t, "money"):
		return "number", ""
	case t == "uuid":
		return "string", "uuid"
	case strings.HasPrefix(t, "timestamp") || strings.HasPrefix(t, "datetime"):
		return "string", "date-time"
	case t == "date":
		return "string", "date"
	}
	return "string", ""
}

// property is a column's input schema.
func property(table string, c Column) map[string]any {
	p := map[string]any{}
	if typ, format := jsonType(c.DBType); typ != "" {
		p["type"] = typ
		if format != "" {
			p["format"] = format
		}
	}
	desc := fmt.Sprintf("%s.%s (%s)", table, c.Name, c.DBType)
	if c.Comment != "" {
		desc = c.Comment + " — " + desc
	}
	if c.Ref != "" {
		desc += ", refers to " + c.Ref
	}
	p["description"] = desc
	return p
}

// toolName is <target>_<verb>_<table>, cut to the 64 characters names allow.
func toolName(target, verb, table string) string {
	clean := regexp.MustCompile(`[^a-zA-Z0-9_-]+`).ReplaceAllString(table, "_")
	n := target + "_" + verb + "_" + strings.Trim(clean, "_")
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}
