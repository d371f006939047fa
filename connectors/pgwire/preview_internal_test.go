package pgwire

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/toolgate/toolgate/broker"
)

// loginFunc adapts a function to UpstreamLogin.
type loginFunc func(ctx context.Context, c broker.Caller) (string, string, func(error), error)

func (f loginFunc) UpstreamLogin(ctx context.Context, c broker.Caller) (string, string, func(error), error) {
	return f(ctx, c)
}

// TestPreviewNeverAsAdmin: a held write is never previewed as the target's
// admin login, and a role that cannot be had says why; nothing connects.
func TestPreviewNeverAsAdmin(t *testing.T) {
	up, err := pgconn.ParseConfig("postgres://toolgate_admin:pw@127.0.0.1:1/crm")
	if err != nil {
		t.Fatal(err)
	}
	released := 0
	for name, tc := range map[string]struct {
		login UpstreamLogin
		code  broker.Code
		want  string
	}{
		"no login": {nil, broker.CodePreviewUnavailable, "sessions on target crm run as its admin login, which never runs a preview"},
		"sessions as admin": {loginFunc(func(context.Context, broker.Caller) (string, string, func(error), error) {
			return "toolgate_admin", "pw", func(error) { released++ }, nil
		}), broker.CodePreviewUnavailable, "this node's sessions on target crm run as its admin login (sessions_as_admin), which never runs a preview"},
		"role unavailable": {loginFunc(func(context.Context, broker.Caller) (string, string, func(error), error) {
			return "", "", nil, broker.Errorf(broker.CodeTargetUnavailable, "toolgate could not provision this session's database role; see the server log")
		}), broker.CodeTargetUnavailable, "the session's database role on target crm is not available: toolgate could not provision"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := &Server{cfg: Config{Target: "crm", DSN: "postgres://toolgate_admin:pw@127.0.0.1:1/crm", Login: tc.login}, up: up}
			_, err := srv.preview(context.Background(), broker.Caller{}, nil, "UPDATE customers SET name = 'x'")
			if broker.CodeOf(err) != tc.code || !strings.Contains(err.Error(), "no preview available: "+tc.want) {
				t.Errorf("preview = %v; want %s %q", err, tc.code, tc.want)
			}
		})
	}
	if released != 1 {
		t.Errorf("the admin login was released %d times, want 1", released)
	}
	s := &session{}
	for _, st := range []broker.Statement{
		{Kind: broker.KindSQL, Class: broker.ClassRead, Text: "SELECT 1"},
		{Kind: broker.KindSQL, Class: broker.ClassWrite, Text: "UPDATE t SET x = 1", Unclassified: "refused"},
		{Kind: broker.KindHTTP, Method: "POST"},
	} {
		if s.previewHook(st) != nil {
			t.Errorf("%+v gets a preview", st)
		}
	}
	if s.previewHook(broker.Statement{Kind: broker.KindSQL, Class: broker.ClassWrite, Text: "UPDATE t SET x = 1"}) == nil {
		t.Error("a write gets no preview")
	}
}
