package httpapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestGoldenResponses pins the exact JSON of the listing, a result, a
// pending answer and an error envelope: these bodies are the external
// contract. Regenerate with go test -update.
func TestGoldenResponses(t *testing.T) {
	for _, tc := range []struct {
		file, method, path, node, body string
		hdr                            []string
	}{
		{"list_triage.json", "GET", "/v1/tools", "triage", "", nil},
		{"call_ok.json", "POST", "/v1/tools/crm_find_customer:call", "triage", `{"email":"ada@example.com"}`, nil},
		{"call_pending.json", "POST", "/v1/tools/billing_refund:call", "refund", `{"order_id":"o-1","amount":250}`, []string{"X-Toolgate-Approval", "apr_resume"}},
		{"call_forbidden.json", "POST", "/v1/tools/billing_refund:call", "triage", `{"order_id":"o-1","amount":250}`, nil},
		{"call_bad_args.json", "POST", "/v1/tools/crm_find_customer:call", "triage", `{"email":7}`, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, srv := newServer(t, httpapi.Options{})
			r := do(t, srv, tc.method, tc.path, doortest.TokenAlpha, tc.node, tc.body, tc.hdr...)
			delete(r.body, "call_id") // random
			got, err := json.MarshalIndent(map[string]any{"status": r.status, "body": r.body}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
