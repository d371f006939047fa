package tools

import (
	"os"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/load/good_sql/crm_find_customer.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, problems := Parse("crm_find_customer.json", data, testTargets); problems != nil {
			b.Fatal(problems)
		}
	}
}

func BenchmarkValidateArgs(b *testing.B) {
	tool, _ := Parse("t.json", []byte(validateDecl), testTargets)
	args := map[string]any{"email": "ana@example.com", "amount": jsonNumber("12.5"), "count": jsonNumber("3")}
	b.ReportAllocs()
	for b.Loop() {
		if err := tool.Spec.ValidateArgs(args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOperationSQL(b *testing.B) {
	tool, _ := Parse("t.json", []byte(sqlDecl), testTargets)
	args := map[string]any{"email": "ana@example.com", "limit": jsonNumber("10"), "ratio": jsonNumber("0.5")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tool.Spec.Operation(args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOperationHTTP(b *testing.B) {
	tool, _ := Parse("t.json", []byte(httpDecl), testTargets)
	args := map[string]any{"order_id": "ord/42", "amount": jsonNumber("12.50"), "tags": []any{"a", "b"}, "customer": map[string]any{"id": jsonNumber("7")}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tool.Spec.Operation(args); err != nil {
			b.Fatal(err)
		}
	}
}
