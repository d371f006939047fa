package postgres

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/toolgate/toolgate/broker"
)

// previewRefused are functions whose effect a rollback does not undo, or
// that could lift the preview's own bounds. A statement that calls one is
// not previewed. Names are matched without their schema; a trailing "*"
// matches a prefix.
var previewRefused = []string{
	"nextval", "setval", // sequences are not transactional
	"dblink*",                                    // the remote side commits on its own
	"pg_advisory_lock*", "pg_try_advisory_lock*", // session locks outlive the transaction
	"pg_advisory_unlock*",                 // and so does releasing them
	"set_config",                          // could lift the preview's timeouts
	"lo_import", "lo_export", "pg_file_*", // server files
	"pg_terminate_backend", "pg_cancel_backend", // other sessions
	"pg_reload_conf", "pg_rotate_logfile", "pg_promote", // the server
	"pg_switch_wal", "pg_create_restore_point", "pg_logical_emit_message",
	"pg_stat_reset*", "pg_log_backend_memory_contexts",
	"pg_create_*", "pg_drop_replication_slot", "pg_replication_*", "pg_copy_*_replication_slot",
}

func previewRefusedFunc(name string) bool {
	for _, p := range previewRefused {
		pre, star := strings.CutSuffix(p, "*")
		if i := strings.IndexByte(pre, '*'); i >= 0 {
			if strings.HasPrefix(name, pre[:i]) && strings.HasSuffix(name, pre[i+1:]) {
				return true
			}
			continue
		}
		if name == p || star && strings.HasPrefix(name, pre) {
			return true
		}
	}
	return false
}

// previewPlan is a statement prepared for a preview.
type previewPlan struct {
	// text is what runs: the statement, with RETURNING * added where it
	// had none and the server supports it.
	text string
	// read is true for a SELECT (a declared preview query): it runs READ
	// ONLY and the rows it returns are the sample and the count.
	read bool
	// image is broker.ImageAfter or broker.ImageBefore; "" for a count
	// without rows.
	image string
	note  string
}

// planPreview parses stmt with the PostgreSQL parser and prepares it for a
// preview on a server of the given major version. A statement that cannot
// be previewed is a broker.NoPreview error with CodePreviewUnavailable.
func planPreview(stmt string, serverMajor int) (previewPlan, error) {
	tree, err := pg_query.Parse(stmt)
	if err != nil {
		return previewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "the PostgreSQL parser rejected the statement: %s", err.Error())
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt == nil {
		return previewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "a preview runs exactly one statement, and this text holds %d", len(tree.Stmts))
	}
	node := tree.Stmts[0].Stmt
	var found previewWalk
	found.walk(node.ProtoReflect(), 0)
	if found.refused != "" {
		return previewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "%s", found.refused)
	}
	plan, returning, err := planNode(node, serverMajor)
	if err != nil {
		return previewPlan{}, err
	}
	top := 0
	if !plan.read {
		top = 1
	}
	if found.writes > top {
		return previewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "the statement changes data inside a WITH clause (a data-modifying CTE), whose rows a preview cannot count")
	}
	plan.text = stmt
	if returning != nil && len(*returning) == 0 {
		*returning = []*pg_query.Node{pg_query.MakeResTargetNodeWithVal(pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, -1), -1)}
		if plan.text, err = pg_query.Deparse(tree); err != nil {
			return previewPlan{}, broker.NoPreview(broker.CodePreviewUnavailable, "the statement could not be rewritten with RETURNING *: %s", err.Error())
		}
	}
	return plan, nil
}

// planNode sorts the statement: which image it shows and which RETURNING
// list to fill (nil: none to add).
func planNode(node *pg_query.Node, serverMajor int) (previewPlan, *[]*pg_query.Node, error) {
	switch n := node.Node.(type) {
	case *pg_query.Node_InsertStmt:
		return previewPlan{image: broker.ImageAfter}, &n.InsertStmt.ReturningList, nil
	case *pg_query.Node_UpdateStmt:
		return previewPlan{image: broker.ImageAfter}, &n.UpdateStmt.ReturningList, nil
	case *pg_query.Node_DeleteStmt:
		return previewPlan{image: broker.ImageBefore}, &n.DeleteStmt.ReturningList, nil
	case *pg_query.Node_MergeStmt:
		if serverMajor >= 17 {
			return previewPlan{image: broker.ImageAfter, note: "rows a MERGE deletes show as they were"}, &n.MergeStmt.ReturningList, nil
		}
		return previewPlan{note: fmt.Sprintf("only the row count: MERGE returns no rows before PostgreSQL 17 (the target runs %d)", serverMajor)}, nil, nil
	case *pg_query.Node_SelectStmt:
		switch {
		case n.SelectStmt.IntoClause != nil:
			return previewPlan{}, nil, broker.NoPreview(broker.CodePreviewUnavailable, "SELECT INTO creates a table; a preview runs INSERT, UPDATE, DELETE, MERGE or a SELECT")
		case len(n.SelectStmt.LockingClause) > 0:
			return previewPlan{}, nil, broker.NoPreview(broker.CodePreviewUnavailable, "a preview query runs READ ONLY and must not lock rows (FOR UPDATE or FOR SHARE)")
		}
		return previewPlan{read: true, image: broker.ImageBefore}, nil, nil
	}
	cmd := strings.ToUpper(strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", node.Node), "*pg_query.Node_"), "Stmt"))
	return previewPlan{}, nil, broker.NoPreview(broker.CodePreviewUnavailable, "a preview runs INSERT, UPDATE, DELETE, MERGE or a SELECT, and this statement is %s", cmd)
}

// previewWalk is what a walk of a statement's tree found.
type previewWalk struct {
	// writes counts INSERT, UPDATE, DELETE and MERGE nodes.
	writes int
	// refused says why the statement cannot be previewed, "" if it can.
	refused string
}

// walk visits every message in the tree.
func (w *previewWalk) walk(m protoreflect.Message, depth int) {
	if w.refused != "" {
		return
	}
	if depth > 1000 {
		w.refused = "the statement nests too deeply"
		return
	}
	switch v := m.Interface().(type) {
	case *pg_query.FuncCall:
		if len(v.Funcname) > 0 {
			if s := v.Funcname[len(v.Funcname)-1].GetString_(); s != nil && previewRefusedFunc(strings.ToLower(s.Sval)) {
				w.refused = fmt.Sprintf("the statement calls %s(), whose effect a rollback does not undo", strings.ToLower(s.Sval))
				return
			}
		}
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
		w.writes++
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
