package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
	"github.com/toolgate/toolgate/broker/mcp"
)

// stdioPeer is the client end of ServeStdio, speaking raw JSON-RPC lines.
type stdioPeer struct {
	t   *testing.T
	in  *io.PipeWriter
	out *bufio.Scanner
}

func (p *stdioPeer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads lines until the response with the given id.
func (p *stdioPeer) recv(id int) map[string]any {
	p.t.Helper()
	for p.out.Scan() {
		var m map[string]any
		if err := json.Unmarshal(p.out.Bytes(), &m); err != nil {
			p.t.Fatalf("not JSON: %q", p.out.Text())
		}
		if m["id"] == float64(id) {
			return m
		}
	}
	p.t.Fatalf("no response %d: %v", id, p.out.Err())
	return nil
}

func startStdio(t *testing.T, cr broker.Credentials) (*doortest.Env, *stdioPeer, chan error) {
	t.Helper()
	env := doortest.New(t)
	s, err := mcp.New(env.Broker, mcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeStdio(ctx, inR, outW, cr)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("ServeStdio did not return after cancel")
		}
	})
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return env, &stdioPeer{t: t, in: inW, out: sc}, done
}

func TestStdio(t *testing.T) {
	env, p, _ := startStdio(t, broker.Credentials{Token: doortest.TokenAlpha, Claimed: broker.Context{Graph: doortest.Graph, Node: "triage"}})
	p.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if r := p.recv(1); r["result"] == nil {
		t.Fatalf("initialize: %v", r)
	}
	p.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	p.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	r := p.recv(2)
	tools := r["result"].(map[string]any)["tools"].([]any)
	var names []string
	for _, x := range tools {
		names = append(names, x.(map[string]any)["name"].(string))
	}
	if strings.Join(names, ",") != doortest.ToolFindCustomer+","+doortest.ToolListOrders {
		t.Errorf("tools = %v", names)
	}

	p.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"crm_find_customer","arguments":{"email":"ada@example.com"}}}`)
	res := p.recv(3)["result"].(map[string]any)
	if res["isError"] == true || res["structuredContent"].(map[string]any)["row_count"] != float64(1) {
		t.Errorf("call: %v", res)
	}
	if ev, _ := env.Recorder.Last(); ev.Door != "stdio" || ev.Status != broker.StatusOK {
		t.Errorf("record = %+v", ev)
	}

	p.send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"billing_refund","arguments":{"order_id":"o-1","amount":1}}}`)
	res = p.recv(4)["result"].(map[string]any)
	if res["isError"] != true || !strings.HasPrefix(res["content"].([]any)[0].(map[string]any)["text"].(string), "forbidden: ") {
		t.Errorf("forbidden call: %v", res)
	}
	if env.Exec.Count() != 1 {
		t.Errorf("executions = %d, want 1", env.Exec.Count())
	}

	p.send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope","arguments":{}}}`)
	if r := p.recv(5); r["error"] == nil {
		t.Errorf("unknown tool: %v", r)
	}
}

func TestStdioRefusesBadCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		cr   broker.Credentials
		code broker.Code
	}{
		{"no token", broker.Credentials{}, broker.CodeUnauthenticated},
		{"bad token", broker.Credentials{Token: "tgk_wrong"}, broker.CodeUnauthenticated},
		{"graph not allowed", broker.Credentials{Token: doortest.TokenBeta, Claimed: broker.Context{Graph: doortest.Graph}}, broker.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := doortest.New(t)
			s, err := mcp.New(env.Broker, mcp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.ServeStdio(context.Background(), strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`+"\n"), io.Discard, tc.cr)
			if broker.CodeOf(err) != tc.code {
				t.Errorf("err = %v, want code %s", err, tc.code)
			}
		})
	}
}
