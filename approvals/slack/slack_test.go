package slack_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/toolgate/toolgate/approvals"
	aslack "github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/approvals/slack/slacktest"
	"github.com/toolgate/toolgate/approvals/webhook"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/internal/db/dbtest"
	_ "modernc.org/sqlite"
)

const (
	secret  = "8f742231b10e8888abcd99yyyzzz85a5"
	channel = slacktest.Channel
	team    = "T0TEAM"
	app     = "A0APP"
	card    = "4111111111111111"
)

// fakeSlack is the Slack Web API (slacktest) and the Socket Mode endpoint
// as toolgate uses them, served over loopback.
type fakeSlack struct {
	*slacktest.API
	srv *httptest.Server
	mu  sync.Mutex
	// envelope is pushed to the Socket Mode client; acks receives its ack.
	envelope string
	acks     chan string
}

var users = map[string]string{
	"U_ANA":   `{"id":"U_ANA","name":"ana","is_email_confirmed":true,"profile":{"email":"Ana@Example.com"}}`,
	"U_BEN":   `{"id":"U_BEN","name":"ben","is_email_confirmed":true,"profile":{"email":"ben@example.com"}}`,
	"U_EVE":   `{"id":"U_EVE","name":"eve","is_email_confirmed":true,"profile":{"email":"eve@example.com"}}`,
	"U_BOT":   `{"id":"U_BOT","name":"bot","is_bot":true,"is_email_confirmed":true,"profile":{"email":"ben@example.com"}}`,
	"U_GUEST": `{"id":"U_GUEST","name":"guest","is_restricted":true,"is_email_confirmed":true,"profile":{"email":"ben@example.com"}}`,
	"U_GONE":  `{"id":"U_GONE","name":"gone","deleted":true,"is_email_confirmed":true,"profile":{"email":"ben@example.com"}}`,
	"U_NOVER": `{"id":"U_NOVER","name":"nover","is_email_confirmed":false,"profile":{"email":"ben@example.com"}}`,
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{API: slacktest.New(users), acks: make(chan string, 4)}
	mux := http.NewServeMux()
	mux.Handle("/", f.API)
	mux.HandleFunc("/ws", f.socket)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// socket serves one Socket Mode connection: hello, the envelope, and the
// client's ack into acks.
func (f *fakeSlack) socket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","num_connections":1}`))
	f.mu.Lock()
	env := f.envelope
	f.mu.Unlock()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(env))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err == nil {
		f.acks <- string(msg)
	}
	// Hold the connection until the client goes away.
	_ = conn.SetReadDeadline(time.Time{})
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

type masker struct{}

func (masker) MaskResult(_ *broker.Tool, d []byte) ([]byte, broker.MaskStats, error) {
	return d, nil, nil
}
func (masker) MaskRecord(d []byte) ([]byte, error) {
	return []byte(strings.ReplaceAll(string(d), card, "************1111")), nil
}
func (masker) MaskText(s string) string { return strings.ReplaceAll(s, card, "************1111") }

type env struct {
	slack *fakeSlack
	n     *aslack.Notifier
	svc   *approvals.Service
	rec   *brokertest.Recorder
	asked int // requests made by ask, each in its own run
}

func newEnv(t *testing.T, mode string) *env { return newEnvWrapped(t, mode, nil) }

// newEnvWrapped is newEnv whose service announces through wrap(slack),
// e.g. the approvals.on_decision webhook wrapping Slack as toolgate wires it.
func newEnvWrapped(t *testing.T, mode string, wrap func(approvals.Announcer) approvals.Announcer) *env {
	t.Helper()
	return newEnvWith(t, mode, wrap, nil)
}

// newEnvWith is newEnvWrapped with mod applied to the notifier's config.
func newEnvWith(t *testing.T, mode string, wrap func(approvals.Announcer) approvals.Announcer, mod func(*aslack.Config)) *env {
	t.Helper()
	f := newFakeSlack(t)
	st, _ := approvals.NewStore(dbtest.SQLite(t))
	cfg := aslack.Config{Mode: mode, BotToken: "xoxb-test", AppToken: "xapp-test", SigningSecret: secret,
		Channel: channel, APIURL: f.srv.URL + "/", TeamID: team, AppID: app,
		Users: map[string]string{"U_LINKED": "user:ben@example.com"}}
	if mod != nil {
		mod(&cfg)
	}
	n, err := aslack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &brokertest.Recorder{}
	var ann approvals.Announcer = n
	if wrap != nil {
		ann = wrap(n)
	}
	svc, err := approvals.New(approvals.Config{Store: st, Masker: masker{}, Recorder: rec, Announcer: ann, Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &env{slack: f, n: n, svc: svc, rec: rec}
}

// ask creates a pending request for ana or ben and returns it.
func (e *env) ask(t *testing.T) approvals.Request {
	t.Helper()
	run := "r1"
	if e.asked++; e.asked > 1 {
		run = "r1-" + strconv.Itoa(e.asked)
	}
	out, err := e.svc.Await(context.Background(), broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: broker.Principal{Subject: "key:support-bot"}, Context: broker.Context{Graph: "support-bot", Node: "refund", Run: run}},
		Tool:     &broker.Tool{Name: "billing_refund", Target: "billing"},
		Args:     map[string]any{"order_id": "o-1", "card": card},
		ArgsHash: "h1",
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.rules[0]",
			Approvers: []string{"user:ana@example.com", "user:ben@example.com"}, MinApprovals: 1},
	})
	if err != nil || out.Status != broker.ApprovalPending {
		t.Fatalf("Await = %+v, %v", out, err)
	}
	r, err := e.svc.Get(context.Background(), out.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// click is a block_actions payload for a button of r's message, as Slack
// sends it: the channel and timestamp of the message Slack posted.
func click(r approvals.Request, user, action string) string {
	return clickBy(r, map[string]any{"id": user, "team_id": team}, action)
}

// clickBy is click by the user object as Slack describes the clicking
// user (id, team_id).
func clickBy(r approvals.Request, user map[string]any, action string) string {
	ch, ts := channel, r.Ref[strings.LastIndex(r.Ref, ":")+1:]
	b, _ := json.Marshal(map[string]any{
		"type": "block_actions", "team": map[string]any{"id": team}, "api_app_id": app,
		"user": user, "channel": map[string]any{"id": ch},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": ch},
		"message":   map[string]any{"ts": ts},
		"actions":   []any{map[string]any{"action_id": action, "block_id": "toolgate_decision", "value": r.ID, "type": "button"}},
	})
	return string(b)
}

func form(payload string) string { return url.Values{"payload": {payload}}.Encode() }

func sign(ts, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":" + body))
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// post sends an interaction request to the handler over loopback.
func post(t *testing.T, srv *httptest.Server, query, body, ts, sig string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/slack/interactions"+query, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAnnounceAndUpdate(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	r := e.ask(t)
	if r.Ref != channel+":1700000000.00011" {
		t.Fatalf("ref = %q", r.Ref)
	}
	msg := e.slack.Last("chat.postMessage")
	blocks := msg.Get("blocks")
	for _, want := range []string{aslack.ActionApprove, aslack.ActionDeny, r.ID, "billing_refund", "support-bot", "confirm", "************1111"} {
		if !strings.Contains(blocks, want) {
			t.Errorf("posted blocks lack %q: %s", want, blocks)
		}
	}
	if strings.Contains(blocks, card) || msg.Get("channel") != channel {
		t.Errorf("posted message leaks the card or goes elsewhere: %v", msg)
	}
	if _, err := e.svc.Decide(context.Background(), r.ID, broker.Principal{Subject: "user:ana@example.com"}, true, "", "cli"); err != nil {
		t.Fatal(err)
	}
	up := e.slack.Last("chat.update")
	if up == nil || strings.Contains(up.Get("blocks"), aslack.ActionApprove) || !strings.Contains(up.Get("blocks"), "user:ana@example.com approved via cli") {
		t.Errorf("update after the decision: %v", up)
	}
	if up.Get("ts") != "1700000000.00011" || up.Get("channel") != channel {
		t.Errorf("updated the wrong message: %v", up)
	}
}

func TestHTTPInteractions(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	srv := httptest.NewServer(e.n.Handler(e.svc))
	defer srv.Close()
	r := e.ask(t)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	stale := strconv.FormatInt(time.Now().Add(-6*time.Minute).Unix(), 10)
	good := form(click(r, "U_ANA", aslack.ActionApprove))

	for _, tc := range []struct {
		name, query, body, ts, sig string
		status                     int
	}{
		{"forged signature", "", good, now, "v0=" + strings.Repeat("ab", 32), 401},
		{"no signature", "", good, now, "", 401},
		{"signature over another body", "", good, now, sign(now, form(click(r, "U_BEN", aslack.ActionApprove))), 401},
		{"stale timestamp", "", good, stale, sign(stale, good), 401},
		{"future timestamp", "", good, strconv.FormatInt(time.Now().Add(6*time.Minute).Unix(), 10), "", 401},
		{"payload smuggled in the query string", "?" + good, "", now, sign(now, ""), 400},
		{"not a payload", "", "hello=world", now, sign(now, "hello=world"), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := post(t, srv, tc.query, tc.body, tc.ts, tc.sig); got != tc.status {
				t.Fatalf("status = %d, want %d", got, tc.status)
			}
			e.n.Wait()
			if got, _ := e.svc.Get(context.Background(), r.ID); got.Status != broker.ApprovalPending || len(got.Votes) != 0 {
				t.Fatalf("refused request decided something: %s, %d votes", got.Status, len(got.Votes))
			}
		})
	}

	// Refused clicks: each gets an ephemeral reply and decides nothing.
	for _, tc := range []struct{ name, payload, want string }{
		{"not an approver", click(r, "U_EVE", aslack.ActionApprove), "only user:ana@example.com"},
		{"bot", click(r, "U_BOT", aslack.ActionApprove), "bots"},
		{"guest", click(r, "U_GUEST", aslack.ActionApprove), "guests"},
		{"deactivated", click(r, "U_GONE", aslack.ActionApprove), "deactivated"},
		{"unconfirmed email", click(r, "U_NOVER", aslack.ActionApprove), "confirmed email"},
		{"unknown user", click(r, "U_WHO", aslack.ActionApprove), "could not be read"},
		{"another message", strings.Replace(click(r, "U_ANA", aslack.ActionApprove), `"message_ts":"`, `"message_ts":"9`, 1), "does not belong"},
		{"another workspace", strings.Replace(click(r, "U_ANA", aslack.ActionApprove), team, "T0OTHER", 1), "another Slack workspace"},
		{"another app", strings.Replace(click(r, "U_ANA", aslack.ActionApprove), app, "A0OTHER", 1), "another Slack app"},
		{"Slack Connect member of another workspace", clickBy(r, map[string]any{"id": "U_ANA", "team_id": "T0PARTNER"}, aslack.ActionApprove), "belongs to another workspace"},
		{"user without a team", clickBy(r, map[string]any{"id": "U_ANA"}, aslack.ActionApprove), "belongs to another workspace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.slack.Count("chat.postEphemeral")
			body := form(tc.payload)
			if got := post(t, srv, "", body, now, sign(now, body)); got != 200 {
				t.Fatalf("status = %d", got)
			}
			e.n.Wait()
			if e.slack.Count("chat.postEphemeral") != before+1 || !strings.Contains(e.slack.Last("chat.postEphemeral").Get("text"), tc.want) {
				t.Errorf("ephemeral reply = %v, want one containing %q", e.slack.Last("chat.postEphemeral"), tc.want)
			}
			if got, _ := e.svc.Get(context.Background(), r.ID); got.Status != broker.ApprovalPending || len(got.Votes) != 0 {
				t.Fatalf("refused click decided something: %s, %d votes", got.Status, len(got.Votes))
			}
		})
	}

	// The same valid click twice (Slack retries) decides once.
	for range 2 {
		if got := post(t, srv, "", good, now, sign(now, good)); got != 200 {
			t.Fatalf("status = %d", got)
		}
		e.n.Wait()
	}
	got, _ := e.svc.Get(context.Background(), r.ID)
	if got.Status != broker.ApprovalApproved || len(got.Votes) != 1 || got.Votes[0].Approver != "user:ana@example.com" || got.Votes[0].Channel != "slack" {
		t.Fatalf("after clicks: %s %+v", got.Status, got.Votes)
	}
	if n := len(e.rec.OfKind(broker.EventApprovalDecided)); n != 1 {
		t.Errorf("decided events = %d, want 1", n)
	}
	if !strings.Contains(e.slack.Last("chat.postEphemeral").Get("text"), "already approved") {
		t.Errorf("the replayed click was not told: %v", e.slack.Last("chat.postEphemeral"))
	}

	// A linked user decides as the linked principal.
	r2 := e.askOther(t)
	body := form(click(r2, "U_LINKED", aslack.ActionDeny))
	post(t, srv, "", body, now, sign(now, body))
	e.n.Wait()
	if got, _ := e.svc.Get(context.Background(), r2.ID); got.Status != broker.ApprovalDenied || got.Votes[0].Approver != "user:ben@example.com" {
		t.Errorf("linked user's deny: %s %+v", got.Status, got.Votes)
	}
}

// askOther creates a second pending request.
func (e *env) askOther(t *testing.T) approvals.Request {
	t.Helper()
	out, err := e.svc.Await(context.Background(), broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: broker.Principal{Subject: "key:support-bot"}, Context: broker.Context{Graph: "support-bot", Node: "refund", Run: "r2"}},
		Tool:     &broker.Tool{Name: "billing_refund", Target: "billing"},
		Args:     map[string]any{"order_id": "o-2"},
		ArgsHash: "h2",
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "r", Approvers: []string{"user:ben@example.com"}, MinApprovals: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := e.svc.Get(context.Background(), out.ID)
	return r
}

func TestSlackDownStillDecidable(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	e.slack.SetDown(true)
	r := e.ask(t)
	if r.Ref != "" || r.Status != broker.ApprovalPending {
		t.Fatalf("request = %s ref %q", r.Status, r.Ref)
	}
	var announced any
	for _, ev := range e.rec.OfKind(broker.EventApprovalRequested) {
		announced = ev.Detail["announced"]
	}
	if announced != false {
		t.Errorf("the failed announcement was not recorded: %v", announced)
	}
	if st, err := e.svc.Decide(context.Background(), r.ID, broker.Principal{Subject: "user:ben@example.com"}, true, "", "http"); err != nil || st != broker.ApprovalApproved {
		t.Fatalf("Decide = %s, %v", st, err)
	}
}

func TestSocketMode(t *testing.T) {
	e := newEnv(t, aslack.ModeSocket)
	r := e.ask(t)
	payload := click(r, "U_ANA", aslack.ActionApprove)
	e.slack.mu.Lock()
	e.slack.envelope = `{"envelope_id":"env-1","type":"interactive","accepts_response_payload":false,"payload":` + payload + `}`
	e.slack.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.n.RunSocketMode(ctx, e.svc) }()
	select {
	case ack := <-e.slack.acks:
		if !strings.Contains(ack, `"envelope_id":"env-1"`) {
			t.Errorf("ack = %s", ack)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ack")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := e.svc.Get(context.Background(), r.ID)
		if got.Status == broker.ApprovalApproved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket mode click not decided: %s", got.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunSocketMode did not stop")
	}
	e.n.Wait()
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  aslack.Config
		want string
	}{
		{"socket without app token", aslack.Config{Mode: "socket", BotToken: "x", Channel: "c"}, "app_token"},
		{"http without secret", aslack.Config{Mode: "http", BotToken: "x", Channel: "c"}, "signing_secret"},
		{"unknown mode", aslack.Config{Mode: "rtm", BotToken: "x", Channel: "c"}, "socket or http"},
		{"no channel", aslack.Config{Mode: "http", SigningSecret: "s", BotToken: "x"}, "channel"},
		{"bad link", aslack.Config{Mode: "http", SigningSecret: "s", BotToken: "x", Channel: "c", Users: map[string]string{"U1": "ana"}}, "users.U1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
			if _, err := aslack.New(tc.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestExpiryUpdatesTheMessage(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	r := e.ask(t)
	if n, err := e.svc.Sweep(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	up := e.slack.Last("chat.update")
	if up == nil || !strings.Contains(up.Get("blocks"), "expired without a decision") || strings.Contains(up.Get("blocks"), aslack.ActionApprove) {
		t.Errorf("update after expiry: %v", up)
	}
	if got, _ := e.svc.Get(context.Background(), r.ID); got.Status != broker.ApprovalExpired {
		t.Errorf("status = %s", got.Status)
	}
}

// TestSlackWithDecisionWebhook: with approvals.on_decision set, the webhook
// wraps Slack. Clicks still decide (the stored message reference is
// Slack's own), the message is redrawn, and the decision reaches the
// webhook receiver once.
func TestSlackWithDecisionWebhook(t *testing.T) {
	got := make(chan []byte, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer receiver.Close()
	var wh *webhook.Notifier
	e := newEnvWrapped(t, aslack.ModeHTTP, func(next approvals.Announcer) approvals.Announcer {
		var err error
		wh, err = webhook.New(webhook.Config{URL: receiver.URL, Secret: "webhook-secret-0123456789", Next: next, Client: receiver.Client()})
		if err != nil {
			t.Fatal(err)
		}
		return wh
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = wh.Run(ctx) }()
	srv := httptest.NewServer(e.n.Handler(e.svc))
	defer srv.Close()
	now := strconv.FormatInt(time.Now().Unix(), 10)

	for _, tc := range []struct {
		action  string
		user    string
		status  broker.ApprovalStatus
		outcome string
	}{
		{aslack.ActionApprove, "U_ANA", broker.ApprovalApproved, "approved"},
		{aslack.ActionDeny, "U_BEN", broker.ApprovalDenied, "denied"},
	} {
		r := e.ask(t)
		updates := e.slack.Count("chat.update")
		ephemerals := e.slack.Count("chat.postEphemeral")
		body := form(click(r, tc.user, tc.action))
		if st := post(t, srv, "", body, now, sign(now, body)); st != 200 {
			t.Fatalf("status = %d", st)
		}
		e.n.Wait()
		cur, _ := e.svc.Get(context.Background(), r.ID)
		if cur.Status != tc.status || len(cur.Votes) != 1 || cur.Votes[0].Channel != aslack.Channel {
			t.Fatalf("after the %s click: %s %+v (ephemeral: %v)", tc.action, cur.Status, cur.Votes, e.slack.Last("chat.postEphemeral"))
		}
		if e.slack.Count("chat.postEphemeral") != ephemerals {
			t.Errorf("the click was answered with a refusal: %v", e.slack.Last("chat.postEphemeral"))
		}
		if e.slack.Count("chat.update") == updates {
			t.Error("the Slack message was not redrawn")
		}
		select {
		case b := <-got:
			if !strings.Contains(string(b), `"approval_id":"`+r.ID+`"`) || !strings.Contains(string(b), `"outcome":"`+tc.outcome+`"`) {
				t.Errorf("webhook body = %s", b)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the decision did not reach the webhook")
		}
	}
}

// TestSlackSelfApprovalByLetterCase: a requester whose OIDC email is
// Ana@Example.COM cannot approve her own call from Slack, where her email is
// Ana@Example.com: names are compared in one normal form.
func TestSlackSelfApprovalByLetterCase(t *testing.T) {
	e := newEnv(t, aslack.ModeHTTP)
	srv := httptest.NewServer(e.n.Handler(e.svc))
	defer srv.Close()
	anaOIDC := broker.Principal{Subject: "user:Ana@Example.COM", Email: "Ana@Example.COM", Method: broker.AuthOIDC}
	for _, requester := range []broker.Principal{anaOIDC, {Subject: "grant:gr_1", Method: broker.AuthGrant, Minter: &anaOIDC}} {
		out, err := e.svc.Await(context.Background(), broker.ApprovalRequest{
			Caller:   broker.Caller{Principal: requester, Context: broker.Context{Graph: "support-bot", Node: "refund", Run: "r-" + requester.Subject}},
			Tool:     &broker.Tool{Name: "billing_refund", Target: "billing"},
			Args:     map[string]any{"order_id": "o-1"},
			ArgsHash: "h1",
			Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "r", Approvers: []string{"user:ana@example.com", "user:ben@example.com"}, MinApprovals: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := e.svc.Get(context.Background(), out.ID)
		now := strconv.FormatInt(time.Now().Unix(), 10)
		body := form(click(r, "U_ANA", aslack.ActionApprove))
		post(t, srv, "", body, now, sign(now, body))
		e.n.Wait()
		if cur, _ := e.svc.Get(context.Background(), r.ID); cur.Status != broker.ApprovalPending || len(cur.Votes) != 0 {
			t.Fatalf("requester %s approved her own call from Slack: %s %+v", requester.Subject, cur.Status, cur.Votes)
		}
		if !strings.Contains(e.slack.Last("chat.postEphemeral").Get("text"), "may not approve it") {
			t.Errorf("reply = %v", e.slack.Last("chat.postEphemeral"))
		}
	}
}

// TestEnterpriseOrganization: with enterprise_id set, a click must come
// from that Enterprise Grid organization, and Slack's habit of reporting
// the organization as a user's team is accepted; a user of a partner
// organization in a shared channel is still refused, with an ephemeral
// reply, and decides nothing.
func TestEnterpriseOrganization(t *testing.T) {
	const org = "E0ORG"
	e := newEnvWith(t, aslack.ModeHTTP, nil, func(c *aslack.Config) { c.EnterpriseID = org })
	srv := httptest.NewServer(e.n.Handler(e.svc))
	defer srv.Close()
	r := e.ask(t)
	inOrg := func(payload, enterprise string) string {
		return strings.Replace(payload, `"team":{"id":"`+team+`"}`, `"team":{"enterprise_id":"`+enterprise+`","id":"`+team+`"}`, 1)
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for _, tc := range []struct{ name, payload, want string }{
		{"another organization", inOrg(click(r, "U_ANA", aslack.ActionApprove), "E0OTHER"), "outside the Slack organization"},
		{"no organization", click(r, "U_ANA", aslack.ActionApprove), "outside the Slack organization"},
		{"partner organization's user", inOrg(clickBy(r, map[string]any{"id": "U_ANA", "team_id": "E0PARTNER"}, aslack.ActionApprove), org), "belongs to another workspace"},
	} {
		body := form(tc.payload)
		if got := post(t, srv, "", body, now, sign(now, body)); got != 200 {
			t.Fatalf("%s: status = %d", tc.name, got)
		}
		e.n.Wait()
		if reply := e.slack.Last("chat.postEphemeral").Get("text"); !strings.Contains(reply, tc.want) {
			t.Errorf("%s: ephemeral reply %q, want one containing %q", tc.name, reply, tc.want)
		}
		if got, _ := e.svc.Get(context.Background(), r.ID); got.Status != broker.ApprovalPending || len(got.Votes) != 0 {
			t.Fatalf("%s: refused click decided something: %s, %d votes", tc.name, got.Status, len(got.Votes))
		}
	}
	body := form(inOrg(clickBy(r, map[string]any{"id": "U_ANA", "team_id": org}, aslack.ActionApprove), org))
	if got := post(t, srv, "", body, now, sign(now, body)); got != 200 {
		t.Fatalf("status = %d", got)
	}
	e.n.Wait()
	if got, _ := e.svc.Get(context.Background(), r.ID); got.Status != broker.ApprovalApproved {
		t.Fatalf("a click of the organization was not counted: %s %+v", got.Status, got.Votes)
	}
}
