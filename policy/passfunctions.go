package policy

import (
	"fmt"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// sideEffecting are functions known to change state, read files or server
// state, run SQL of their own or reach other servers. They may not be
// added to a passthrough entry's functions: a statement that calls one is
// admitted only by an allow rule, which names the condition under which
// it may run. A trailing "*" matches a prefix.
var sideEffecting = []string{
	"set_config", "setseed", "nextval", "setval", "currval", "lastval",
	"pg_read_*", "pg_ls_*", "pg_stat_*", "pg_file_*", "pg_hba_file_rules", "pg_ident_file_mappings",
	"pg_show_all_file_settings", "pg_current_logfile",
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile*", "pg_promote",
	"pg_switch_wal", "pg_wal_replay_*", "pg_backup_*", "pg_create_*", "pg_drop_replication_slot",
	"pg_copy_*_replication_slot", "pg_replication_*", "pg_logical_*", "pg_import_system_collations",
	"pg_log_backend_memory_contexts", "pg_advisory*", "pg_try_advisory*", "pg_notify", "pg_sleep*",
	"pg_export_snapshot", "pg_current_xact_id*", "txid_*", "lo_*", "loread", "lowrite", "dblink*",
	"query_to_xml*", "cursor_to_xml*", "table_to_xml*", "schema_to_xml*", "database_to_xml*",
	"ts_stat", "ts_rewrite",
}

// isSideEffecting reports whether a function's name (its last part) is in
// sideEffecting.
func isSideEffecting(name string) bool {
	for _, p := range sideEffecting {
		if pre, post, ok := strings.Cut(p, "*"); ok {
			if strings.HasPrefix(name, pre) && strings.HasSuffix(name[len(pre):], post) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// checkFunction returns why a passthrough functions entry is refused, ""
// when it is a well-spelled name (see functionName) of no function known
// to have side effects.
func checkFunction(entry string) string {
	if why := functionName(entry); why != "" {
		return why
	}
	if strings.HasPrefix(entry, "operator ") {
		return ""
	}
	parts, _ := splitName(entry)
	if last := parts[len(parts)-1]; isSideEffecting(last) {
		return fmt.Sprintf("%s has side effects or reads outside the grant; admit the statements that call it with an allow rule instead", last)
	}
	return ""
}

// functionName returns why entry is not a name as the classifier (see
// connectors/pgwire) reports it, "" when it is: a function or type,
// optionally schema-qualified, each part a plain lower-case identifier or
// a double-quoted one that needs its quotes; or "operator <symbol>",
// optionally with a schema before the symbol.
func functionName(entry string) string {
	if op, ok := strings.CutPrefix(entry, "operator "); ok {
		schema, sym := "", op
		if i := strings.LastIndexByte(op, '.'); i >= 0 {
			schema, sym = op[:i], op[i+1:]
		}
		if schema != "" && !broker.PlainIdentifier(schema) || sym == "" || strings.Trim(sym, "+-*/<>=~!@#%^&|`?") != "" {
			return fmt.Sprintf("%q is not an operator name: write operator <symbol> or operator <schema>.<symbol>", entry)
		}
		return ""
	}
	if parts, ok := splitName(entry); !ok || len(parts) > 3 {
		return fmt.Sprintf("%q is not a function name as PostgreSQL spells it: write name or schema.name in lower case, and double-quote a part only where it needs quotes", entry)
	}
	return ""
}

// splitName splits a qualified name into its parts, unquoting quoted
// parts; a quoted part that needs no quotes is refused so every name has
// one spelling.
func splitName(s string) ([]string, bool) {
	var parts []string
	for {
		var part string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for {
				i := strings.IndexByte(s[end:], '"')
				if i < 0 {
					return nil, false
				}
				end += i + 1
				if end < len(s) && s[end] == '"' {
					end++
					continue
				}
				break
			}
			part = strings.ReplaceAll(s[1:end-1], `""`, `"`)
			if part == "" || broker.PlainIdentifier(part) {
				return nil, false
			}
			s = s[end:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			part, s = s[:i], s[i:]
			if !broker.PlainIdentifier(part) {
				return nil, false
			}
		}
		parts = append(parts, part)
		if s == "" {
			return parts, true
		}
		if s[0] != '.' {
			return nil, false
		}
		s = s[1:]
	}
}
