package tools

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

func loadFile(t *testing.T, file string) *broker.Tool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(data))
}

func TestPreviewPlanSQL(t *testing.T) {
	args := map[string]any{"from_tier": "a", "to_tier": "b"}

	// A declared query, bound to the call's arguments.
	tool := loadFile(t, "testdata/load/preview/sql_query.json")
	plan, err := tool.Spec.(broker.PreviewPlanner).PreviewPlan(args)
	if err != nil {
		t.Fatal(err)
	}
	want := broker.PreviewPlan{
		Op:        broker.Operation{SQL: &broker.SQLOperation{Statement: "/* the rows that move */ SELECT id, tier FROM promo WHERE tier = $1", Args: []any{"a"}}},
		Tolerance: broker.Tolerance{Rows: 2, Percent: 5.5},
	}
	if !reflect.DeepEqual(plan, want) {
		t.Errorf("plan = %+v %+v, want %+v %+v", plan, plan.Op.SQL, want, want.Op.SQL)
	}
	if stmt, names, ok := tool.Spec.(*Spec).PreviewSQL(); !ok || stmt != want.Op.SQL.Statement || !reflect.DeepEqual(names, []string{"from_tier"}) {
		t.Errorf("PreviewSQL = %q %v %v", stmt, names, ok)
	}

	// Without a query, the tool's own statement is dry-run.
	tool = loadFile(t, "testdata/load/preview/sql_tolerance.json")
	plan, err = tool.Spec.(broker.PreviewPlanner).PreviewPlan(map[string]any{"days": json.Number("30")})
	if err != nil {
		t.Fatal(err)
	}
	op, _ := tool.Spec.Operation(map[string]any{"days": json.Number("30")})
	if !reflect.DeepEqual(plan.Op, op) || plan.Tolerance != (broker.Tolerance{Percent: 10}) {
		t.Errorf("plan = %+v, want the call's operation %+v", plan, op)
	}
	if _, _, ok := tool.Spec.(*Spec).PreviewSQL(); ok {
		t.Error("PreviewSQL reports a query the tool does not declare")
	}
	// A tool without a preview key previews the same way, exactly.
	plain := mustParse(t, `{"name": "crm_x", "target": "crm", "input_schema": {"type": "object"}, "sql": {"statement": "DELETE FROM t"}}`)
	if plan, err := plain.Spec.(broker.PreviewPlanner).PreviewPlan(nil); err != nil || plan.Op.SQL.Statement != "DELETE FROM t" || plan.Tolerance != (broker.Tolerance{}) {
		t.Errorf("plan = %+v, %v", plan, err)
	}
}

func TestPreviewPlanHTTP(t *testing.T) {
	tool := loadFile(t, "testdata/load/preview/http_request.json")
	plan, err := tool.Spec.(broker.PreviewPlanner).PreviewPlan(map[string]any{"order_id": "a/b", "expand": "lines"})
	if err != nil {
		t.Fatal(err)
	}
	if h := plan.Op.HTTP; h == nil || h.Method != "GET" || h.Path != "/orders/a%2Fb" || h.Query.Get("expand") != "lines" || h.Body != nil || plan.Op.SQL != nil {
		t.Errorf("plan = %+v", plan.Op.HTTP)
	}
	// The same argument rules as the call: a path value that would climb
	// out is refused.
	if _, err := tool.Spec.(broker.PreviewPlanner).PreviewPlan(map[string]any{"order_id": ".."}); !errors.Is(err, broker.ErrInvalidArguments) {
		t.Errorf("err = %v, want invalid_arguments", err)
	}
}

func TestPreviewPlanUnavailable(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/load/preview/sql_off.json":          "no preview available: the tool opts out: order numbers come from a sequence, which a rolled-back preview would still consume",
		"testdata/load/preview/sqlite_off.json":       "no preview available: the tool opts out: a trigger mails the customer",
		"testdata/load/good_http/billing_refund.json": "no preview available: the tool declares no preview request",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tool, problems := Parse(file, data, testTargets)
		if len(problems) > 0 {
			t.Fatalf("%s: %v", file, problems)
		}
		plan, err := tool.Spec.(broker.PreviewPlanner).PreviewPlan(map[string]any{"customer_id": json.Number("1"), "order_id": "1", "amount": json.Number("1")})
		var be *broker.Error
		if !errors.As(err, &be) || be.Code != broker.CodePreviewUnavailable || be.Message != want {
			t.Errorf("%s: err = %v, want %q", file, err, want)
		}
		if !reflect.DeepEqual(plan, broker.PreviewPlan{}) {
			t.Errorf("%s: a tool without a preview planned %+v", file, plan)
		}
	}
}
