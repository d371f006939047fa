package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
)

func TestGrantsRecordMintAndRevoke(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rec := &brokertest.Recorder{}
			g, err := NewGrants(GrantsConfig{Store: st, Graphs: testGraphs, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			res, err := g.Mint(ctx, bot, MintRequest{Graph: "support-bot", RunID: "run-1", Nodes: []string{"triage"}, TTL: time.Minute, Scope: map[string]any{"customer_id": 42}})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Revoke(ctx, bot, res.GrantID); err != nil {
				t.Fatal(err)
			}
			events := rec.Events()
			if len(events) != 2 || events[0].Kind != broker.EventGrantMinted || events[1].Kind != broker.EventGrantRevoked {
				t.Fatalf("events = %+v", events)
			}
			ev := events[0]
			if ev.Principal != "key:support-bot" || ev.Graph != "support-bot" || ev.Run != "run-1" || ev.Detail["grant_id"] != res.GrantID {
				t.Errorf("minted event = %+v", ev)
			}
			all := ""
			for _, e := range events {
				all += strings.Join([]string{e.Principal, e.TokenID, e.Graph, e.Run}, " ") + " " + toString(e.Detail)
			}
			if strings.Contains(all, res.Tokens["triage"]) {
				t.Errorf("an event holds the token: %s", all)
			}
			if _, ok := ev.Detail["scope"]; ok || len(ev.Detail["scope_sha256"].(string)) != 64 {
				t.Errorf("the event must summarize the scope, not hold it: %v", ev.Detail)
			}
		})
	}
}

func toString(m map[string]any) string {
	var b strings.Builder
	for k, v := range m {
		b.WriteString(k)
		b.WriteString("=")
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case []string:
			b.WriteString(strings.Join(v, ","))
		}
		b.WriteString(" ")
	}
	return b.String()
}

// TestGrantsMintFailsClosedWithoutAudit: an unrecordable mint returns no
// token and leaves the stored grant revoked.
func TestGrantsMintFailsClosedWithoutAudit(t *testing.T) {
	st, err := NewSQLGrantStore(useDB(t, openSQLite(t), "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &brokertest.Recorder{}
	rec.SetFail(true)
	g, err := NewGrants(GrantsConfig{Store: st, Graphs: testGraphs, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Mint(context.Background(), bot, MintRequest{Graph: "support-bot", RunID: "run-1", Nodes: []string{"triage"}, TTL: time.Minute})
	if broker.CodeOf(err) != broker.CodeAuditUnavailable || len(res.Tokens) != 0 {
		t.Fatalf("mint = %+v, %v; want audit_unavailable and no tokens", res, err)
	}
	gs, err := st.List(context.Background(), GrantFilter{Graph: "support-bot"})
	if err != nil || len(gs) != 1 || gs[0].RevokedAt.IsZero() {
		t.Fatalf("stored grants = %+v %v; want the one grant, revoked", gs, err)
	}
}

func TestGrantsList(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			g, err := NewGrants(GrantsConfig{Store: st, Graphs: testGraphs, Now: func() time.Time { now = now.Add(time.Second); return now }})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, run := range []string{"r1", "r1", "r2"} {
				res, err := g.Mint(ctx, bot, MintRequest{Graph: "support-bot", RunID: run, Nodes: []string{"triage"}, TTL: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, res.GrantID)
			}
			if _, err := g.Mint(ctx, stranger, MintRequest{Graph: "other", RunID: "r1", Nodes: []string{"x"}, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				p    broker.Principal
				f    GrantFilter
				want []string
				code broker.Code
			}{
				{bot, GrantFilter{Graph: "support-bot"}, []string{ids[2], ids[1], ids[0]}, ""},
				{operator, GrantFilter{Graph: "support-bot", Run: "r1"}, []string{ids[1], ids[0]}, ""},
				{bot, GrantFilter{Graph: "support-bot", Run: "nope"}, nil, ""},
				{stranger, GrantFilter{Graph: "support-bot"}, nil, broker.CodeForbidden},
				{bot, GrantFilter{}, nil, broker.CodeInvalidArguments},
				{broker.Principal{Subject: "grant:x", Method: broker.AuthGrant}, GrantFilter{Graph: "support-bot"}, nil, broker.CodeForbidden},
			} {
				gs, err := g.List(ctx, c.p, c.f)
				if broker.CodeOf(err) != c.code && !(c.code == "" && err == nil) {
					t.Errorf("%s %+v: err %v, want %s", c.p.Subject, c.f, err, c.code)
					continue
				}
				var got []string
				for _, gr := range gs {
					got = append(got, gr.ID)
				}
				if strings.Join(got, ",") != strings.Join(c.want, ",") {
					t.Errorf("%s %+v: %v, want %v", c.p.Subject, c.f, got, c.want)
				}
			}
		})
	}
}
