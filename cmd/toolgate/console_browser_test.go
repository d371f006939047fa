package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/testenv"
)

var screenshots = flag.Bool("screenshots", false, "write the console screenshots to docs/console-*.png")

// chromiumPath is Debian's chromium package; tests never download a
// browser.
const chromiumPath = "/usr/bin/chromium"

// consoleApp is `toolgate dev`'s instance served in-process on loopback,
// with calls that wait long enough for a human in a browser.
type consoleApp struct {
	url  string
	data string
	keys devKeys
}

func startConsoleApp(t *testing.T, edits ...func(*config.Config)) *consoleApp {
	t.Helper()
	data := t.TempDir()
	file, keys, err := prepareDev(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Approvals.Wait = config.Duration(45 * time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	for _, edit := range edits {
		edit(cfg)
	}
	a, err := openApp(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.Close() })
	return &consoleApp{url: srv.URL, data: data, keys: keys}
}

// callResult is the answer to a tool call made over the HTTP API.
type callResult struct {
	status int
	body   string
	err    error
}

// call calls tool as the dev agent from node in run, in the background,
// and delivers the answer on the channel.
func (c *consoleApp) call(node, tool, run, args string) <-chan callResult {
	out := make(chan callResult, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, c.url+"/v1/tools/"+tool+":call", strings.NewReader(args))
		req.Header.Set("Authorization", "Bearer "+c.keys.Agent)
		req.Header.Set("X-Toolgate-Graph", "support-bot")
		req.Header.Set("X-Toolgate-Node", node)
		req.Header.Set("X-Toolgate-Run", run)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- callResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- callResult{status: resp.StatusCode, body: string(b)}
	}()
	return out
}

// pending returns the id of the pending approval of run, waiting for it.
func (c *consoleApp) pending(t *testing.T, run string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, c.url+"/v1/approvals", nil)
		req.Header.Set("Authorization", "Bearer "+c.keys.Approver)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Approvals []struct{ ID, Run, Status string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, a := range list.Approvals {
			if a.Run == run && a.Status == "pending" {
				return a.ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pending approval for run %s", run)
	return ""
}

// approvalStatus reads a request's status through the API.
func (c *consoleApp) approvalStatus(t *testing.T, id string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+"/v1/approvals/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+c.keys.Approver)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct{ Status string }
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return a.Status
}

// newBrowser starts headless Chromium from Debian's package with a fresh
// profile. Without it the test skips locally and fails in CI.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: the console's browser tests need Debian's chromium package (apt-get install -y chromium)", chromiumPath)
		}
		t.Skipf("%s is missing: install Debian's chromium package (apt-get install -y chromium) to run the console's browser tests", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	}
	// A fresh profile, removed once Chromium's helper processes let go of
	// it (t.TempDir would fail the test when one still writes there).
	profile, err := os.MkdirTemp("", "toolgate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, chromedp.UserDataDir(profile))...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf), chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// drive runs actions with a deadline, failing the test with what it was
// doing.
func drive(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		var loc, body string
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_ = chromedp.Run(dctx, chromedp.Location(&loc), chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\nat %s: %s", what, err, loc, body)
	}
}

// signInWithKey signs a browser context in by pasting key.
func signInWithKey(t *testing.T, ctx context.Context, base, key string) {
	t.Helper()
	drive(t, ctx, "sign in",
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible("#key", chromedp.ByQuery),
		chromedp.SendKeys("#key", key, chromedp.ByQuery),
		chromedp.Click("form.stack button", chromedp.ByQuery),
		chromedp.WaitVisible("#viewer", chromedp.ByQuery),
	)
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*screenshots {
		return
	}
	var png []byte
	drive(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium against the
// real server: sign-in with a key; a held refund appears in the inbox by
// itself, is approved and the waiting call completes exactly once; a deny;
// a held SQL write shows its effect preview with the masked sample, markup
// in it as text; a POST without the CSRF token is refused and changes
// nothing; an auditor
// opens the run's timeline and downloads it; a non-auditor is refused; a
// browser without a session (and without JavaScript) lands on sign-in.
func TestConsoleInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	app := startConsoleApp(t, withPromo(t))

	// One tab: a background tab's timers and frames are throttled.
	approver := ctx
	t.Run("without a session, without JavaScript, to sign-in", func(t *testing.T) {
		var loc string
		drive(t, approver, "open the history", emulation.SetScriptExecutionDisabled(true),
			chromedp.Navigate(app.url+"/console/history?status=denied"), chromedp.WaitVisible("#key", chromedp.ByQuery), chromedp.Location(&loc))
		if !strings.HasSuffix(loc, "/console/signin?next=%2Fconsole%2Fhistory%3Fstatus%3Ddenied") {
			t.Fatalf("landed on %s", loc)
		}
		// The form works without scripts, and brings the browser back.
		drive(t, approver, "sign in", chromedp.SendKeys("#key", app.keys.Approver, chromedp.ByQuery), chromedp.Click("form.stack button", chromedp.ByQuery),
			chromedp.WaitVisible("#viewer", chromedp.ByQuery), chromedp.Location(&loc), emulation.SetScriptExecutionDisabled(false))
		if !strings.HasSuffix(loc, "/console/history?status=denied") {
			t.Fatalf("after sign-in at %s", loc)
		}
	})
	drive(t, approver, "open the inbox", chromedp.Navigate(app.url+"/console/"), chromedp.WaitVisible("#inbox", chromedp.ByID))

	t.Run("a held refund is approved and runs once", func(t *testing.T) {
		if res := <-app.call("triage", "crm_find_customer", "run-1", `{"email":"ada@example.com"}`); res.status != 200 {
			t.Fatalf("lookup: %d %s", res.status, res.body)
		}
		done := app.call("billing", "billing_refund", "run-1", `{"order_id":104,"amount":250,"reason":"arrived broken"}`)
		id := app.pending(t, "run-1")
		var votes, args string
		drive(t, approver, "the request appears in the open inbox",
			chromedp.WaitVisible("#"+id, chromedp.ByID),
			chromedp.Text("#"+id+" .votes", &votes, chromedp.ByQuery),
			chromedp.Text("#"+id+" pre.json", &args, chromedp.ByQuery))
		if votes != "0 of 1" || !strings.Contains(args, `"amount": 250`) {
			t.Fatalf("card shows votes %q, args %q", votes, args)
		}
		var flash string
		drive(t, approver, "approve",
			chromedp.SendKeys("#reason-"+id, "photo checked", chromedp.ByID),
			chromedp.Click("#"+id+" button.approve", chromedp.ByQuery),
			chromedp.WaitVisible("p.flash", chromedp.ByQuery),
			chromedp.Text("p.flash", &flash, chromedp.ByQuery))
		if !strings.Contains(flash, "You approved "+id) {
			t.Fatalf("flash %q", flash)
		}
		select {
		case res := <-done:
			if res.err != nil || res.status != 200 || !strings.Contains(res.body, `"amount":250`) {
				t.Fatalf("the waiting call: %d %v %s", res.status, res.err, res.body)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the waiting call did not complete after the approval")
		}
		if again := <-app.call("billing", "billing_refund", "run-1", `{"order_id":104,"amount":250,"reason":"arrived broken"}`); again.status != 200 {
			t.Fatalf("repeat: %d %s", again.status, again.body)
		}
		if n := refunds(t, app.data, 104); n != 1 {
			t.Fatalf("refund rows for order 104: %d, want exactly 1", n)
		}
	})

	t.Run("a held write shows its masked preview, markup as text", func(t *testing.T) {
		heldWriteShowsPreview(t, app, approver)
	})

	t.Run("a POST without the CSRF token is refused, then a deny", func(t *testing.T) {
		done := app.call("billing", "billing_refund", "run-2", `{"order_id":105,"amount":300,"reason":"never arrived"}`)
		id := app.pending(t, "run-2")
		drive(t, approver, "reload the inbox", chromedp.Navigate(app.url+"/console/inbox"), chromedp.WaitVisible("#"+id, chromedp.ByID))
		var status int
		drive(t, approver, "a forged POST", chromedp.Evaluate(fmt.Sprintf(
			`fetch("/console/approvals/%s/approve", {method: "POST", credentials: "same-origin", body: new URLSearchParams({reason: "forged"})}).then(r => r.status)`, id),
			&status, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if status != http.StatusForbidden || app.approvalStatus(t, id) != "pending" {
			t.Fatalf("POST without token: %d, request %s", status, app.approvalStatus(t, id))
		}
		var flash string
		drive(t, approver, "deny",
			chromedp.SendKeys("#reason-"+id, "no proof", chromedp.ByID),
			chromedp.Click("#"+id+" button.deny", chromedp.ByQuery),
			chromedp.WaitVisible("p.flash", chromedp.ByQuery),
			chromedp.Text("p.flash", &flash, chromedp.ByQuery))
		if !strings.Contains(flash, "You denied "+id) {
			t.Fatalf("flash %q", flash)
		}
		res := <-done
		if res.status != http.StatusForbidden || !strings.Contains(res.body, "approval_denied") {
			t.Fatalf("the waiting call after a deny: %d %s", res.status, res.body)
		}
		if n := refunds(t, app.data, 105); n != 0 {
			t.Fatalf("a denied refund ran: %d rows", n)
		}
	})

	t.Run("an auditor opens the run and downloads it", func(t *testing.T) {
		dir := t.TempDir()
		var chain, timeline string
		drive(t, approver, "open the run from the runs list",
			chromedp.Navigate(app.url+"/console/runs"),
			chromedp.Click(`a[href="/console/runs/run-1"]`, chromedp.ByQuery),
			chromedp.WaitVisible("#chain-status", chromedp.ByID),
			chromedp.Text("#chain-status", &chain, chromedp.ByID),
			chromedp.Text("ol.timeline", &timeline, chromedp.ByQuery))
		if !strings.HasPrefix(chain, "Intact") || !strings.Contains(timeline, "Approval requested") || !strings.Contains(timeline, "billing_refund") ||
			!strings.Contains(timeline, "triage") || strings.Contains(timeline, "4242424242424242") {
			t.Fatalf("chain %q\ntimeline %s", chain, timeline)
		}
		drive(t, approver, "open the lookup's details", chromedp.Click("ol.timeline li:first-child summary", chromedp.ByQuery))
		screenshot(t, approver, "console-run.png")
		file := download(t, approver, dir, "#download-jsonl")
		b, err := os.ReadFile(file)
		if err != nil || !strings.Contains(string(b), `"prev_hash"`) || strings.Count(string(b), "\n") < 4 {
			t.Fatalf("download (%v):\n%s", err, b)
		}
	})

	t.Run("sign out, and a non-auditor is refused", func(t *testing.T) {
		var loc, msg string
		drive(t, approver, "sign out", chromedp.Navigate(app.url+"/console/inbox"),
			chromedp.Click("form[action='/console/signout'] button", chromedp.ByQuery),
			chromedp.WaitVisible("#key", chromedp.ByQuery),
			chromedp.Navigate(app.url+"/console/inbox"), chromedp.WaitVisible("#key", chromedp.ByQuery), chromedp.Location(&loc))
		if !strings.Contains(loc, "/console/signin") {
			t.Fatalf("after sign-out the inbox is at %s", loc)
		}
		signInWithKey(t, approver, app.url, app.keys.Agent)
		drive(t, approver, "open the runs", chromedp.Navigate(app.url+"/console/runs"),
			chromedp.WaitVisible("#error-message", chromedp.ByID), chromedp.Text("#error-message", &msg, chromedp.ByID))
		if !strings.Contains(msg, "key:support-bot, which is not an auditor") {
			t.Fatalf("refusal says %q", msg)
		}
	})
}

// download clicks the link sel and returns the downloaded file.
func download(t *testing.T, ctx context.Context, dir, sel string) string {
	t.Helper()
	done := make(chan string, 1)
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- e.GUID:
			default:
			}
		}
	})
	drive(t, ctx, "download", browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).
		WithDownloadPath(dir).WithEventsEnabled(true), chromedp.Click(sel, chromedp.ByQuery))
	select {
	case guid := <-done:
		return filepath.Join(dir, guid)
	case <-time.After(15 * time.Second):
		t.Fatal("the download did not complete")
		return ""
	}
}

// withPromo adds a PostgreSQL target crm holding a promo table (cards, and
// notes with markup in them) and the crm_retier tool of the preview test
// (retierTool, its cards masked), which the billing node may call with the
// approver's approval.
func withPromo(t *testing.T) func(*config.Config) {
	dsn := testenv.Postgres(t).CreateDB(t)
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(context.Background(), `CREATE TABLE promo (id int PRIMARY KEY, card text NOT NULL, note text NOT NULL, tier text NOT NULL, moves int NOT NULL DEFAULT 0);
		INSERT INTO promo VALUES (1, '4242424242424242', '<script>window.pwned = 1</script>', 'gold'),
			(2, '5555555555554444', '<img src=x onerror="window.pwned = 2">', 'gold'), (3, '378282246310005', 'plain', 'silver')`); err != nil {
		t.Fatal(err)
	}
	return func(cfg *config.Config) {
		cfg.Targets["crm"] = config.Target{Kind: "postgres", Postgres: &config.PostgresTarget{DSN: dsn, StatementTimeout: config.Duration(5 * time.Second)}}
		if err := os.WriteFile(filepath.Join(cfg.ToolsDir, "crm_retier.json"), []byte(retierTool), 0o644); err != nil {
			t.Fatal(err)
		}
		g := cfg.Graphs["support-bot"]
		n := g.Nodes["billing"]
		n.Allow = append(n.Allow, "crm_retier")
		n.Rules = append(n.Rules, config.Rule{Tool: "crm_retier", Effect: "approve", Approvers: []string{"key:approver"}, MinApprovals: 1})
		g.Nodes["billing"] = n
		cfg.Graphs["support-bot"] = g
	}
}

// heldWriteShowsPreview holds crm_retier and checks its card in the open
// inbox: the preview's headline (rows affected, the after-image), the
// sample as a table whose cards are masked and never shown whole, and the
// notes' markup as text that created no element and ran nothing. The
// approval then runs the write.
func heldWriteShowsPreview(t *testing.T, app *consoleApp, approver context.Context) {
	done := app.call("billing", "crm_retier", "run-3", `{"from_tier":"gold","to_tier":"platinum"}`)
	id := app.pending(t, "run-3")
	var caption, cards, notes, page string
	var injected int
	drive(t, approver, "the held write appears in the open inbox with its preview",
		chromedp.WaitVisible("#"+id+" table.sample", chromedp.ByQuery),
		chromedp.Text("#"+id+" table.sample caption", &caption, chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll("#%s table.sample tbody td:nth-child(2)")].map(td => td.textContent).join(",")`, id), &cards),
		chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll("#%s table.sample tbody td:nth-child(3)")].map(td => td.textContent).join(",")`, id), &notes),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll("#%s table.sample script, #%s table.sample img").length + (window.pwned ? 100 : 0)`, id, id), &injected),
		chromedp.Text("body", &page, chromedp.ByQuery))
	if caption != "rows affected: 2; below: 2 rows as they would be after the change" {
		t.Errorf("the preview says %q", caption)
	}
	if cards != "************4242,************4444" || strings.Contains(page, "4242424242424242") || strings.Contains(page, "5555555555554444") {
		t.Errorf("sample cards %q; the page shows a whole card: %v", cards, strings.Contains(page, "42424242"))
	}
	if notes != `<script>window.pwned = 1</script>,<img src=x onerror="window.pwned = 2">` || injected != 0 {
		t.Errorf("notes %q, injected elements or effects %d", notes, injected)
	}
	screenshot(t, approver, "console-inbox.png")
	drive(t, approver, "approve the write", chromedp.Click("#"+id+" button.approve", chromedp.ByQuery))
	waitFlash(t, approver, "You approved "+id)
	select {
	case res := <-done:
		if res.err != nil || res.status != 200 || !strings.Contains(res.body, `"row_count":2`) {
			t.Fatalf("the approved write: %d %v %s", res.status, res.err, res.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the approved write did not complete")
	}
}

// waitFlash waits for the page's message to say want: the page before a
// form's answer may still show an earlier one.
func waitFlash(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	var flash string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := chromedp.Run(tctx, chromedp.WaitVisible("p.flash", chromedp.ByQuery), chromedp.Text("p.flash", &flash, chromedp.ByQuery))
		cancel()
		if err == nil && strings.Contains(flash, want) {
			return
		}
	}
	t.Fatalf("the page says %q, want %q", flash, want)
}
