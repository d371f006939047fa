package pgwire

import (
	"fmt"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/toolgate/toolgate/broker"
)

// sideEffects are functions whose call changes state, reads server files,
// runs SQL of its own or reaches other servers. A statement that calls one
// is refused unless a passthrough rule explicitly allows it. Names are
// matched without their schema; prefixes end in "*".
var sideEffects = []string{
	"set_config", "setval", "nextval",
	"pg_read_file", "pg_read_binary_file", "pg_ls_*", "pg_stat_file", "pg_file_*",
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
	"pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_backup_*",
	"pg_advisory*", "pg_try_advisory*", "pg_notify", "pg_logical_emit_message",
	"pg_create_*_replication_slot", "pg_drop_replication_slot", "pg_replication_*",
	"pg_import_system_collations", "pg_log_backend_memory_contexts",
	"lo_*", "loread", "lowrite", "dblink*",
	"query_to_xml*", "cursor_to_xml*", "table_to_xml*", "schema_to_xml*", "database_to_xml*",
	"pg_sleep*",
}

// isSideEffect reports whether a function name (without schema) is in
// sideEffects.
func isSideEffect(name string) bool {
	for _, p := range sideEffects {
		if strings.HasSuffix(p, "*") {
			prefix := strings.TrimSuffix(p, "*")
			if i := strings.Index(prefix, "*"); i >= 0 { // one inner star: pg_create_*_replication_slot
				if strings.HasPrefix(name, prefix[:i]) && strings.HasSuffix(name, p[i+1:len(p)-1]) {
					return true
				}
				continue
			}
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if i := strings.Index(p, "*"); i >= 0 {
			if strings.HasPrefix(name, p[:i]) && strings.HasSuffix(name, p[i+1:]) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// Classify parses SQL text with the PostgreSQL parser and describes every
// statement in it, in order. Text the parser rejects yields one statement
// with Unclassified set, which the broker always refuses.
func Classify(sql string) []broker.Statement {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return []broker.Statement{{Kind: broker.KindSQL, Text: sql, Unclassified: "the PostgreSQL parser rejected it: " + err.Error()}}
	}
	if len(tree.Stmts) == 0 {
		return []broker.Statement{{Kind: broker.KindSQL, Class: broker.ClassRead, Command: "EMPTY", Text: sql}}
	}
	out := make([]broker.Statement, 0, len(tree.Stmts))
	for _, raw := range tree.Stmts {
		text := sql
		if raw.StmtLen > 0 || raw.StmtLocation > 0 {
			end := len(sql)
			if raw.StmtLen > 0 {
				end = int(raw.StmtLocation + raw.StmtLen)
			}
			if int(raw.StmtLocation) <= end && end <= len(sql) {
				text = strings.TrimSpace(sql[raw.StmtLocation:end])
			}
		}
		out = append(out, classifyNode(raw.Stmt, text))
	}
	return out
}

// walkResult is what a walk of one statement's tree found.
type walkResult struct {
	tables   map[string]bool
	ctes     map[string]bool
	funcs    map[string]bool
	modifies bool // INSERT/UPDATE/DELETE/MERGE anywhere
	locks    bool // FOR UPDATE/SHARE
	into     bool // SELECT INTO
}

func classifyNode(n *pg_query.Node, text string) broker.Statement {
	st := broker.Statement{Kind: broker.KindSQL, Text: text}
	w := walkResult{tables: map[string]bool{}, ctes: map[string]bool{}, funcs: map[string]bool{}}
	if n == nil || n.Node == nil {
		st.Unclassified = "the statement is empty"
		return st
	}
	w.walk(n.ProtoReflect(), 0)
	st.Class, st.Command = commandClass(n, &w)
	if set, ok := n.Node.(*pg_query.Node_VariableSetStmt); ok {
		switch strings.ToLower(set.VariableSetStmt.Name) {
		case "role", "session_authorization", "session authorization":
			w.funcs["set role"] = true
		}
	}
	if _, ok := n.Node.(*pg_query.Node_VariableShowStmt); ok {
		st.Class = broker.ClassRead
	}
	for t := range w.tables {
		if !strings.Contains(t, ".") && w.ctes[t] {
			continue
		}
		st.Tables = append(st.Tables, t)
	}
	sort.Strings(st.Tables)
	for f := range w.funcs {
		st.Functions = append(st.Functions, f)
	}
	sort.Strings(st.Functions)
	return st
}

// commandClass names the statement's command and its class.
func commandClass(n *pg_query.Node, w *walkResult) (class, command string) {
	switch s := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		switch {
		case w.into:
			return broker.ClassDDL, "SELECT INTO"
		case w.modifies || w.locks:
			return broker.ClassWrite, "SELECT"
		}
		return broker.ClassRead, "SELECT"
	case *pg_query.Node_InsertStmt:
		return broker.ClassWrite, "INSERT"
	case *pg_query.Node_UpdateStmt:
		return broker.ClassWrite, "UPDATE"
	case *pg_query.Node_DeleteStmt:
		return broker.ClassWrite, "DELETE"
	case *pg_query.Node_MergeStmt:
		return broker.ClassWrite, "MERGE"
	case *pg_query.Node_CopyStmt:
		if s.CopyStmt.IsProgram || s.CopyStmt.Filename != "" {
			w.funcs["copy file or program"] = true
		}
		if s.CopyStmt.IsFrom {
			return broker.ClassWrite, "COPY FROM"
		}
		return broker.ClassOther, "COPY TO"
	case *pg_query.Node_ExplainStmt:
		analyze := false
		for _, o := range s.ExplainStmt.Options {
			if d := o.GetDefElem(); d != nil && strings.EqualFold(d.Defname, "analyze") {
				analyze = true
				if b := d.Arg.GetBoolean(); b != nil && !b.Boolval {
					analyze = false
				}
				if str := d.Arg.GetString_(); str != nil && (strings.EqualFold(str.Sval, "off") || strings.EqualFold(str.Sval, "false")) {
					analyze = false
				}
			}
		}
		inner, cmd := commandClass(s.ExplainStmt.Query, w)
		if !analyze {
			// EXPLAIN without ANALYZE plans and runs nothing.
			return broker.ClassRead, "EXPLAIN " + cmd
		}
		return inner, "EXPLAIN ANALYZE " + cmd
	case *pg_query.Node_TransactionStmt:
		// Transaction control reads and writes nothing by itself.
		return broker.ClassRead, strings.TrimPrefix(s.TransactionStmt.Kind.String(), "TRANS_STMT_")
	case *pg_query.Node_VariableShowStmt:
		return broker.ClassRead, "SHOW"
	case *pg_query.Node_VariableSetStmt:
		return broker.ClassOther, "SET"
	}
	name := strings.TrimPrefix(fmt.Sprintf("%T", n.Node), "*pg_query.Node_")
	switch {
	case strings.HasPrefix(name, "Create"), strings.HasPrefix(name, "Alter"), strings.HasPrefix(name, "Drop"):
		return broker.ClassDDL, commandName(name)
	}
	switch name {
	case "TruncateStmt", "GrantStmt", "GrantRoleStmt", "RenameStmt", "CommentStmt", "IndexStmt",
		"ViewStmt", "RuleStmt", "DefineStmt", "CompositeTypeStmt", "ReindexStmt", "SecLabelStmt",
		"ReassignOwnedStmt", "RefreshMatViewStmt", "ClusterStmt", "VacuumStmt", "ImportForeignSchemaStmt":
		return broker.ClassDDL, commandName(name)
	}
	return broker.ClassOther, commandName(name)
}

func commandName(node string) string {
	return strings.ToUpper(strings.TrimSuffix(node, "Stmt"))
}

// walk visits every message in the tree, collecting relations, CTE names,
// side-effecting functions and data-modifying or locking clauses.
func (w *walkResult) walk(m protoreflect.Message, depth int) {
	if depth > 1000 {
		w.funcs["statement nests too deeply"] = true
		return
	}
	switch v := m.Interface().(type) {
	case *pg_query.RangeVar:
		name := v.Relname
		if v.Schemaname != "" {
			name = v.Schemaname + "." + name
		}
		if v.Catalogname != "" {
			name = v.Catalogname + "." + name
		}
		w.tables[name] = true
	case *pg_query.CommonTableExpr:
		w.ctes[v.Ctename] = true
	case *pg_query.FuncCall:
		if fn := funcName(v.Funcname); fn != "" && isSideEffect(fn) {
			w.funcs[fn] = true
		}
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
		w.modifies = true
	case *pg_query.SelectStmt:
		if len(v.LockingClause) > 0 {
			w.locks = true
		}
		if v.IntoClause != nil {
			w.into = true
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				w.walk(l.Get(i).Message(), depth+1)
			}
		case fd.Message() != nil && !fd.IsMap():
			w.walk(val.Message(), depth+1)
		}
		return true
	})
}

// funcName is the last part of a function name, lower case.
func funcName(parts []*pg_query.Node) string {
	if len(parts) == 0 {
		return ""
	}
	if s := parts[len(parts)-1].GetString_(); s != nil {
		return strings.ToLower(s.Sval)
	}
	return ""
}
