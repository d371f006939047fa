package httptarget_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/httptarget"
)

func TestPreviewRequest(t *testing.T) {
	srv, last, hits := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/orders/104":
			_, _ = w.Write([]byte(`{"id": 104, "total": "12.50", "card": "4242424242424242"}`))
		case "/orders/a/b":
			_, _ = w.Write([]byte(`not json`))
		case "/broken":
			w.WriteHeader(http.StatusBadGateway)
		default:
			http.NotFound(w, r)
		}
	})
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL}, nil)
	ctx := context.Background()

	p, err := c.Preview(ctx, op("GET", "/orders/104", url.Values{"expand": {"lines"}}, ""), 5)
	if err != nil {
		t.Fatal(err)
	}
	if p.RowsAffected != -1 || p.Image != broker.ImageBefore || p.Truncated || p.Hash != "" {
		t.Errorf("preview = %+v", p)
	}
	var sample []map[string]any
	if err := json.Unmarshal(p.Sample, &sample); err != nil || len(sample) != 1 || sample[0]["id"] != float64(104) {
		t.Errorf("sample %s: %v", p.Sample, err)
	}
	if s := last.Load(); s.Method != "GET" || s.RawQuery != "expand=lines" || s.Auth != secret {
		t.Errorf("request %+v: the preview is sent like any request, credentials included", s)
	}

	// An escaped path parameter stays one segment.
	if p, err = c.Preview(ctx, op("GET", "/orders/"+url.PathEscape("a/b"), nil, ""), 0); err != nil || string(p.Sample) != `["not json"]` {
		t.Errorf("escaped path: %s, %v", p.Sample, err)
	}
	if s := last.Load(); s.RawPath != "/orders/a%2Fb" {
		t.Errorf("path sent as %q", s.RawPath)
	}

	for _, tc := range []struct {
		name string
		op   broker.Operation
		code broker.Code
		want string
		sent bool
	}{
		{"a write", op("POST", "/orders/104/refunds", nil, `{"amount": 1}`), broker.CodePreviewUnavailable, "must be a GET without a body", false},
		{"a delete", op("DELETE", "/orders/104", nil, ""), broker.CodePreviewUnavailable, "this one is DELETE", false},
		{"a path leaving the target", op("GET", "/orders/%2e%2e/admin", nil, ""), broker.CodeInvalidRequest, `"." or ".."`, false},
		{"not found", op("GET", "/orders/999", nil, ""), broker.CodeTargetError, "answered HTTP 404 Not Found", true},
		{"server error", op("GET", "/broken", nil, ""), broker.CodeTargetError, "answered HTTP 502", true},
		{"not http", broker.Operation{SQL: &broker.SQLOperation{Statement: "SELECT 1"}}, broker.CodeInvalidRequest, "HTTP operations only", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			_, err := c.Preview(ctx, tc.op, 0)
			if broker.CodeOf(err) != tc.code || !strings.Contains(err.Error(), "no preview available: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %s saying %q", err, tc.code, tc.want)
			}
			if sent := hits.Load() != before; sent != tc.sent {
				t.Errorf("request sent = %v, want %v", sent, tc.sent)
			}
			if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
				t.Error("the error leaks the credentials")
			}
		})
	}
}
