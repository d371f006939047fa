package pgwire

import (
	"fmt"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/toolgate/toolgate/broker"
)

// Markers in Statement.Functions for what a statement does that is not a
// function call but, like a side-effecting function, only an allow rule
// may admit.
const (
	markCopyFile = "copy file or program"
	markTooDeep  = "statement nests too deeply"
	// encodingPinned ends the refusals of a client encoding change.
	encodingPinned = "the proxy pins the client encoding to UTF8"
)

// Classify parses SQL text with the PostgreSQL parser and describes every
// statement in it, in order. Text the parser rejects yields one statement
// with Unclassified set, which the broker always refuses; so does a
// statement toolgate refuses whatever policy says (a change of client
// encoding or of the session's role).
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
	tables map[string]bool
	// funcs are the functions, casts and operators not on the built-in
	// lists, and markers.
	funcs map[string]bool
	// declTypes are types named outside a cast (column definition lists,
	// RETURNING clauses, parameter types): values are converted to them,
	// except in DDL, which only declares them.
	declTypes map[string]bool
	// scope is the stack of CTE names visible where the walk is.
	scope    []string
	modifies bool // INSERT/UPDATE/DELETE/MERGE anywhere
	locks    bool // FOR UPDATE/SHARE
	into     bool // SELECT INTO
	// refusal is why the statement is refused whatever policy says.
	refusal string
}

func classifyNode(n *pg_query.Node, text string) broker.Statement {
	st := broker.Statement{Kind: broker.KindSQL, Text: text}
	w := walkResult{tables: map[string]bool{}, funcs: map[string]bool{}, declTypes: map[string]bool{}}
	if n == nil || n.Node == nil {
		st.Unclassified = "the statement is empty"
		return st
	}
	w.walk(n.ProtoReflect(), 0)
	st.Class, st.Command = commandClass(n, &w)
	if st.Class != broker.ClassDDL {
		for t := range w.declTypes {
			w.funcs[t] = true
		}
	}
	if w.modifies && (w.tables["pg_settings"] || w.tables["pg_catalog.pg_settings"]) {
		w.refuse("writing pg_settings changes settings, including the client encoding and the role")
	}
	st.Unclassified = w.refusal
	st.Tables = sortedKeys(w.tables)
	st.Functions = sortedKeys(w.funcs)
	return st
}

// refuse records the first reason to refuse the statement outright.
func (w *walkResult) refuse(why string) {
	if w.refusal == "" {
		w.refusal = why
	}
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
			w.funcs[markCopyFile] = true
		}
		if s.CopyStmt.IsFrom {
			return broker.ClassWrite, "COPY FROM"
		}
		if w.modifies || w.locks {
			// COPY (DELETE ... RETURNING) TO STDOUT writes, yet a rule
			// admitting COPY TO means an export.
			w.refuse("COPY TO of a query that writes or locks rows is not supported through toolgate; run the statement itself")
		}
		if copyBinary(s.CopyStmt) {
			w.refuse("COPY TO in binary format cannot be masked; use text or csv format")
		}
		return broker.ClassOther, "COPY TO"
	case *pg_query.Node_ExplainStmt:
		inner, cmd := commandClass(s.ExplainStmt.Query, w)
		if !explainAnalyze(s.ExplainStmt) {
			// EXPLAIN without ANALYZE plans and runs nothing.
			return broker.ClassRead, "EXPLAIN " + cmd
		}
		return inner, "EXPLAIN ANALYZE " + cmd
	case *pg_query.Node_TransactionStmt:
		return transactionClass(s.TransactionStmt)
	case *pg_query.Node_VariableShowStmt:
		return broker.ClassRead, "SHOW"
	case *pg_query.Node_VariableSetStmt:
		return setClass(s.VariableSetStmt, w), "SET"
	case *pg_query.Node_DiscardStmt:
		if s.DiscardStmt.Target == pg_query.DiscardMode_DISCARD_ALL {
			w.refuse("DISCARD ALL runs RESET ALL, which would reset the client encoding " + encodingPinned + " and the session's role")
		}
		return broker.ClassOther, "DISCARD"
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

// explainAnalyze reports whether EXPLAIN runs its statement.
func explainAnalyze(s *pg_query.ExplainStmt) bool {
	analyze := false
	for _, o := range s.Options {
		if d := o.GetDefElem(); d != nil && strings.EqualFold(d.Defname, "analyze") {
			analyze = d.Arg == nil || !isFalse(d.Arg)
		}
	}
	return analyze
}

// copyBinary reports whether COPY's options ask for the binary format (or
// name a format that is not a constant).
func copyBinary(s *pg_query.CopyStmt) bool {
	for _, o := range s.Options {
		if d := o.GetDefElem(); d != nil && strings.EqualFold(d.Defname, "format") {
			if v, ok := optionValue(d.Arg); !ok || v == "binary" {
				return true
			}
		}
	}
	return false
}

// isFalse reports whether an option value is one PostgreSQL reads as
// false for a boolean option (defGetBoolean): false, off, 0.
func isFalse(n *pg_query.Node) bool {
	v, ok := optionValue(n)
	return ok && (v == "false" || v == "off" || v == "0")
}

// isTrue reports whether a setting value is one PostgreSQL's parse_bool
// reads as true: a prefix of true or yes, on, 1.
func isTrue(n *pg_query.Node) bool {
	v, ok := optionValue(n)
	if !ok || v == "" {
		return false
	}
	return strings.HasPrefix("true", v) || strings.HasPrefix("yes", v) || v == "on" || v == "1"
}

// optionValue is a constant option or setting value, trimmed and in
// lower case.
func optionValue(n *pg_query.Node) (string, bool) {
	if c := n.GetAConst(); c != nil {
		switch v := c.Val.(type) {
		case *pg_query.A_Const_Boolval:
			return fmt.Sprint(v.Boolval.Boolval), true
		case *pg_query.A_Const_Ival:
			return fmt.Sprint(v.Ival.Ival), true
		case *pg_query.A_Const_Sval:
			return strings.ToLower(strings.TrimSpace(v.Sval.Sval)), true
		}
		return "", false
	}
	switch {
	case n.GetBoolean() != nil:
		return fmt.Sprint(n.GetBoolean().Boolval), true
	case n.GetInteger() != nil:
		return fmt.Sprint(n.GetInteger().Ival), true
	case n.GetString_() != nil:
		return strings.ToLower(strings.TrimSpace(n.GetString_().Sval)), true
	}
	return "", false
}

// transactionClass classifies transaction control. Plain BEGIN, COMMIT,
// ROLLBACK and savepoints read and write nothing by themselves; a READ
// WRITE transaction is a write (it lifts a read-only default); two-phase
// commit acts on transactions other sessions may have prepared, so it is
// of class other.
func transactionClass(s *pg_query.TransactionStmt) (class, command string) {
	switch s.Kind {
	case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
		return broker.ClassOther, "PREPARE TRANSACTION"
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:
		return broker.ClassOther, "COMMIT PREPARED"
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		return broker.ClassOther, "ROLLBACK PREPARED"
	}
	command = strings.ReplaceAll(strings.TrimPrefix(s.Kind.String(), "TRANS_STMT_"), "_", " ")
	if readWrite(s.Options) {
		return broker.ClassWrite, command + " READ WRITE"
	}
	return broker.ClassRead, command
}

// readWrite reports whether transaction modes ask for READ WRITE.
func readWrite(opts []*pg_query.Node) bool {
	for _, o := range opts {
		if d := o.GetDefElem(); d != nil && d.Defname == "transaction_read_only" && (d.Arg == nil || !isTrue(d.Arg)) {
			return true
		}
	}
	return false
}

// setClass classifies SET and RESET. Changing the client encoding or the
// session's role is refused outright; lifting read-only mode is a write.
func setClass(s *pg_query.VariableSetStmt, w *walkResult) string {
	name := strings.ToLower(s.Name)
	switch {
	case s.Kind == pg_query.VariableSetKind_VAR_RESET_ALL:
		w.refuse("RESET ALL would reset the client encoding " + encodingPinned + " and the session's role")
	case name == "client_encoding":
		w.refuse("it changes the client encoding, and " + encodingPinned)
	case name == "role", name == "session_authorization":
		w.refuse("it changes the session's role, which passthrough sessions may not do")
	case name == "transaction", name == "session characteristics":
		if readWrite(s.Args) {
			return broker.ClassWrite
		}
	case name == "default_transaction_read_only", name == "transaction_read_only":
		if s.Kind != pg_query.VariableSetKind_VAR_SET_VALUE || len(s.Args) != 1 || !isTrue(s.Args[0]) {
			return broker.ClassWrite
		}
	}
	return broker.ClassOther
}

// walk visits every message in the tree, collecting relations, calls of
// functions, casts and operators off the built-in lists, and
// data-modifying or locking clauses.
func (w *walkResult) walk(m protoreflect.Message, depth int) {
	if depth > 1000 {
		w.funcs[markTooDeep] = true
		return
	}
	if w.visit(m, depth) {
		return
	}
	if with := withClause(m); with != nil {
		defer w.popScope(len(w.scope))
		w.with(with, depth)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		switch {
		case fd.Name() == "with_clause":
			// Walked above, with its scope.
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

// visit records what one message says about the statement; done means it
// also walked the message's children.
func (w *walkResult) visit(m protoreflect.Message, depth int) (done bool) {
	switch v := m.Interface().(type) {
	case *pg_query.RangeVar:
		w.relation(v)
	case *pg_query.FuncCall:
		w.call(v)
	case *pg_query.TypeCast:
		// The cast's type is converted to, whatever the statement.
		w.typeName(v.TypeName, w.funcs)
		if v.Arg != nil {
			w.walk(v.Arg.ProtoReflect(), depth+1)
		}
		return true
	case *pg_query.TypeName:
		w.typeName(v, w.declTypes)
	case *pg_query.A_Expr:
		switch v.Kind {
		case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
			pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
			// The name is the keyword; the comparisons are built-in.
		default:
			w.operator(v.Name)
		}
	case *pg_query.SubLink:
		w.operator(v.OperName)
	case *pg_query.SortBy:
		w.operator(v.UseOp)
	case *pg_query.RangeTableSample:
		if parts := nameParts(v.Method); !builtin(parts, tablesampleMethods) {
			w.funcs[qualifiedName(parts, false)] = true
		}
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
		w.modifies = true
	case *pg_query.SelectStmt:
		w.locks = w.locks || len(v.LockingClause) > 0
		w.into = w.into || v.IntoClause != nil
	case *pg_query.WithClause:
		// A WITH clause met outside its statement: its names are visible
		// only inside it (fail closed: more names count as tables).
		n := len(w.scope)
		w.with(v, depth)
		w.popScope(n)
		return true
	}
	return false
}

// withClause is the WITH clause of a SELECT, INSERT, UPDATE, DELETE or
// MERGE, nil for anything else.
func withClause(m protoreflect.Message) *pg_query.WithClause {
	switch v := m.Interface().(type) {
	case *pg_query.SelectStmt:
		return v.WithClause
	case *pg_query.InsertStmt:
		return v.WithClause
	case *pg_query.UpdateStmt:
		return v.WithClause
	case *pg_query.DeleteStmt:
		return v.WithClause
	case *pg_query.MergeStmt:
		return v.WithClause
	}
	return nil
}

// with walks a WITH clause's queries and leaves its names in scope, as
// PostgreSQL sees them: a query of a plain WITH sees the names before its
// own; every query of WITH RECURSIVE sees them all.
func (w *walkResult) with(c *pg_query.WithClause, depth int) {
	if c.Recursive {
		for _, n := range c.Ctes {
			if cte := n.GetCommonTableExpr(); cte != nil {
				w.scope = append(w.scope, cte.Ctename)
			}
		}
	}
	for _, n := range c.Ctes {
		w.walk(n.ProtoReflect(), depth+1)
		if cte := n.GetCommonTableExpr(); cte != nil && !c.Recursive {
			w.scope = append(w.scope, cte.Ctename)
		}
	}
}

func (w *walkResult) popScope(n int) { w.scope = w.scope[:n] }

// relation records a relation the statement names, unless it is a CTE in
// scope.
func (w *walkResult) relation(v *pg_query.RangeVar) {
	if v.Schemaname == "" && v.Catalogname == "" {
		for _, s := range w.scope {
			if s == v.Relname {
				return
			}
		}
	}
	name := v.Relname
	if v.Schemaname != "" {
		name = v.Schemaname + "." + name
	}
	if v.Catalogname != "" {
		name = v.Catalogname + "." + name
	}
	w.tables[name] = true
}

// call records a function call off the list, and refuses set_config on
// the client encoding or the role.
func (w *walkResult) call(v *pg_query.FuncCall) {
	parts := nameParts(v.Funcname)
	if !builtin(parts, builtinFunctions) {
		w.funcs[qualifiedName(parts, false)] = true
	}
	if len(parts) == 0 || parts[len(parts)-1] != "set_config" || len(parts) > 1 && parts[0] != "pg_catalog" {
		return
	}
	name, ok := "", false
	if len(v.Args) > 0 {
		arg := v.Args[0]
		for arg.GetTypeCast() != nil {
			arg = arg.GetTypeCast().Arg
		}
		if c := arg.GetAConst(); c != nil && c.GetSval() != nil {
			name, ok = strings.ToLower(c.GetSval().Sval), true
		}
	}
	switch {
	case !ok:
		w.refuse("set_config's setting name is not a constant, so toolgate cannot tell whether it changes the client encoding or the role")
	case name == "client_encoding":
		w.refuse("set_config changes the client encoding, and " + encodingPinned)
	case name == "role", name == "session_authorization":
		w.refuse("set_config changes the session's role, which passthrough sessions may not do")
	}
}

// typeName records a type off the list in into.
func (w *walkResult) typeName(t *pg_query.TypeName, into map[string]bool) {
	if t == nil {
		return
	}
	if parts := nameParts(t.Names); !builtin(parts, builtinFunctions) {
		into[qualifiedName(parts, false)] = true
	}
}

// operator records an operator off the list.
func (w *walkResult) operator(name []*pg_query.Node) {
	if len(name) == 0 {
		return
	}
	if parts := nameParts(name); !builtin(parts, builtinOperators) {
		w.funcs["operator "+qualifiedName(parts, true)] = true
	}
}

// nameParts are the parts of a qualified name as the parser gives them
// (unquoted identifiers already in lower case). A part that is not a
// string makes the name match nothing.
func nameParts(ns []*pg_query.Node) []string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		if s := n.GetString_(); s != nil {
			parts[i] = s.Sval
		} else {
			parts[i] = "?"
		}
	}
	return parts
}
