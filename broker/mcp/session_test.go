package mcp_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

// sessionRequest sends method to /mcp with a session id and credentials and
// returns the status and, for an event stream, whether it opened.
func sessionRequest(t *testing.T, srv *httptest.Server, method, sid string, hdr map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var body *strings.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequestWithContext(ctx, method, srv.URL+"/mcp", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "text/event-stream") && method == http.MethodGet {
		return resp.StatusCode, "stream"
	}
	line, _ := bufio.NewReader(resp.Body).ReadString(0)
	return resp.StatusCode, line
}

// TestSessionBoundToCaller: an Mcp-Session-Id is bound to the principal,
// graph and node that initialized it. Another principal, or the same
// principal claiming another node, presenting it gets 404 on every method:
// the GET notification stream, POST and DELETE; nothing is listed, no
// stream opens, and the session survives for its owner.
func TestSessionBoundToCaller(t *testing.T) {
	_, srv := newServer(t)
	owner := map[string]string{"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "triage"}
	status, hdr, body := rawPost(t, srv, initBody, owner)
	sid := hdr.Get("Mcp-Session-Id")
	if status != 200 || !strings.HasPrefix(sid, "mcp-session-") {
		t.Fatalf("initialize: %d %q %s", status, sid, body)
	}
	strangers := map[string]map[string]string{
		"another principal":          {"Authorization": "Bearer " + doortest.TokenBeta},
		"same principal, new node":   {"Authorization": "Bearer " + doortest.TokenAlpha, broker.HeaderGraph: doortest.Graph, broker.HeaderNode: "refund"},
		"same principal, no graph":   {"Authorization": "Bearer " + doortest.TokenAlpha},
		"forged id for the stranger": {"Authorization": "Bearer " + doortest.TokenBeta},
	}
	for name, who := range strangers {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			id := sid
			if name == "forged id for the stranger" {
				id = sid[:len(sid)-1] + "0"
			}
			status, got := sessionRequest(t, srv, method, id, who)
			if status != http.StatusNotFound || got == "stream" || strings.Contains(got, doortest.ToolFindCustomer) {
				t.Errorf("%s: %s with the owner's session = %d %q; want 404", name, method, status, got)
			}
		}
	}
	// The owner keeps the session: it lists, opens the stream and ends it.
	if status, got := sessionRequest(t, srv, http.MethodPost, sid, owner); status != 200 || !strings.Contains(got, doortest.ToolFindCustomer) {
		t.Fatalf("owner's POST: %d %q", status, got)
	}
	if status, got := sessionRequest(t, srv, http.MethodGet, sid, owner); status != 200 || got != "stream" {
		t.Fatalf("owner's GET stream: %d %q", status, got)
	}
	if status, got := sessionRequest(t, srv, http.MethodDelete, sid, owner); status != 200 {
		t.Fatalf("owner's DELETE: %d %q", status, got)
	}
	// A session id minted elsewhere (another server's format) is unknown.
	if status, _ := sessionRequest(t, srv, http.MethodGet, "mcp-session-0b9ab3f6-4f0e-4f43-9a37-0d8f6a1f2c11", owner); status != 404 {
		t.Errorf("an id toolgate did not mint: %d, want 404", status)
	}
}
