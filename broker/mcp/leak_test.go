package mcp_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

// TestNoGoroutineLeak serves a burst of sessions and calls, refused ones
// included, and checks that the goroutine count returns to where it was.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	_, srv := newServer(t)
	for i := 0; i < 20; i++ {
		_, hdr, _ := rawPost(t, srv, initBody, map[string]string{"Authorization": "Bearer " + doortest.TokenAlpha,
			broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "triage"})
		h := map[string]string{"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph,
			broker.HeaderNode: "triage", "Mcp-Session-Id": hdr.Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-11-25"}
		rawPost(t, srv, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crm_find_customer","arguments":{"email":"a@b.c"}}}`, h)
		rawPost(t, srv, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"billing_refund","arguments":{}}}`, h)
		rawPost(t, srv, `{"jsonrpc":"2.0","id":4,"method":`, h)
		rawPost(t, srv, initBody, nil)
	}
	srv.Client().CloseIdleConnections()
	srv.Close()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
}
