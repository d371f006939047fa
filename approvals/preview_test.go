package approvals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/approvals"
	aslack "github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/httptarget"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/testenv"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/tools"
)

// The values a preview must never show unmasked: a card (the detectors
// mask it) and a note only the tools' mask rules know to redact.
const (
	rawNote    = "vip-code-7788"
	promoTable = `CREATE TABLE promo (id int PRIMARY KEY, email text NOT NULL, card text NOT NULL, note text NOT NULL,
		tier text NOT NULL, bumps int NOT NULL DEFAULT 0, changed_by text NOT NULL DEFAULT '');
	INSERT INTO promo (id, email, card, note, tier) VALUES
		(1, 'ada@example.com', '4111111111111111', 'vip-code-7788', 'a'),
		(2, 'grace@example.com', '4111111111111111', 'vip-code-7788', 'a'),
		(3, 'alan@example.com', '4111111111111111', 'vip-code-7788', 'b');
	CREATE TABLE slow (id int PRIMARY KEY, v int NOT NULL);
	INSERT INTO slow VALUES (1, 0);
	CREATE FUNCTION dawdle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$;
	CREATE TRIGGER slow_update BEFORE UPDATE ON slow FOR EACH ROW EXECUTE FUNCTION dawdle();`
)

// previewTools are the tools of the preview tests, on targets crm and
// crm_slow (one PostgreSQL database) and billing (an HTTP API).
var previewTools = []string{
	`{"name": "promo_bump", "target": "crm", "description": "Bump every promo row of a tier.",
	  "input_schema": {"type": "object", "properties": {"tier": {"type": "string"}}, "required": ["tier"]},
	  "sql": {"statement": "UPDATE promo SET bumps = bumps + 1 WHERE tier = $1", "args": ["tier"]},
	  "mask": {"rows.#.note": "redact"}}`,
	`{"name": "promo_bump_loose", "target": "crm",
	  "input_schema": {"type": "object", "properties": {"tier": {"type": "string"}}, "required": ["tier"]},
	  "sql": {"statement": "UPDATE promo SET bumps = bumps + 1 WHERE tier = $1", "args": ["tier"]},
	  "preview": {"tolerance": {"rows": 1}}, "mask": {"rows.#.note": "redact"}}`,
	`{"name": "promo_reset", "target": "crm",
	  "input_schema": {"type": "object", "properties": {"tier": {"type": "string"}}, "required": ["tier"]},
	  "sql": {"statement": "UPDATE promo SET bumps = 0 WHERE tier = $1", "args": ["tier"]},
	  "preview": false, "preview_reason": "the reset also notifies the loyalty system, which a rollback cannot undo"}`,
	`{"name": "slow_touch", "target": "crm_slow",
	  "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
	  "sql": {"statement": "UPDATE slow SET v = v + 1 WHERE id = $1", "args": ["id"]}}`,
	`{"name": "billing_cancel_order", "target": "billing",
	  "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
	  "http": {"method": "POST", "path": "/orders/{order_id}/cancel"},
	  "preview": {"http": {"method": "GET", "path": "/orders/{order_id}"}},
	  "mask": {"body.note": "redact"}}`,
}

// previewStack is the whole pipeline of a held call with previews: a real
// broker, the approval Service on a real store, the PostgreSQL connector
// on a throwaway database, an HTTP target, tools parsed from their
// declarations and the real masker.
type previewStack struct {
	*env
	b      *broker.Broker
	caller broker.Caller
	admin  *pgx.Conn
	api    *billingAPI
}

// billingAPI is the HTTP target: GET /orders/{id} shows an order (with a
// card and a note), POST /orders/{id}/cancel cancels it.
type billingAPI struct {
	*httptest.Server
	mu             sync.Mutex
	gets, cancels  int
	cancelledOrder string
}

func newBillingAPI(t *testing.T) *billingAPI {
	a := &billingAPI{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.gets++
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id": %q, "total": 250, "card": %q, "note": %q}`, r.PathValue("id"), card, rawNote)
	})
	mux.HandleFunc("POST /orders/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.cancels++
		a.cancelledOrder = r.PathValue("id")
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"cancelled": true}`)
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *billingAPI) counts() (gets, cancels int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gets, a.cancels
}

// newPreviewStack builds the stack on e's store, with a fresh database.
func newPreviewStack(t *testing.T, e *env, routes ...broker.Route) *previewStack {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t).CreateDB(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	if _, err := admin.Exec(ctx, promoTable); err != nil {
		t.Fatal(err)
	}
	s := &previewStack{env: e, admin: admin, api: newBillingAPI(t)}
	targets := map[string]broker.Executor{}
	for name, pt := range map[string]time.Duration{"crm": 0, "crm_slow": 300 * time.Millisecond} {
		c, err := postgres.New(ctx, postgres.Config{Name: name, DSN: dsn, StatementTimeout: 40 * time.Second, PreviewTimeout: pt, PreviewLockTimeout: 200 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		targets[name] = c
	}
	if targets["billing"], err = httptarget.New(httptarget.Config{Name: "billing", BaseURL: s.api.URL}, nil); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{"crm": config.KindPostgres, "crm_slow": config.KindPostgres, "billing": config.KindHTTP}
	var loaded []*broker.Tool
	for i, decl := range previewTools {
		tool, problems := tools.Parse(fmt.Sprintf("tool%d.json", i), []byte(decl), kinds)
		if len(problems) > 0 {
			t.Fatalf("tool %d: %v", i, problems)
		}
		loaded = append(loaded, tool)
	}
	catalog, err := tools.NewCatalog(loaded...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mask.New(mask.Config{Targets: map[string]mask.TargetConfig{"crm": {Rules: map[string]string{"promo.note": "redact"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.b, err = broker.New(broker.Config{
		Live:    broker.Live{Catalog: catalog, Policy: holdAll{}, Masker: m, Routes: routes},
		Targets: targets, Auth: agentAuth{}, Recorder: e.rec, Approvals: e.svc,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.caller, err = s.b.Identify(ctx, broker.Credentials{Token: agentToken,
		Claimed: broker.Context{Graph: "support-bot", Node: "refund", Run: "run-p"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// holdAll is approvePolicy for tool calls and passthrough statements.
type holdAll struct{ approvePolicy }

func (holdAll) DecideStatement(context.Context, broker.StatementRequest) (broker.Decision, error) {
	return broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.refund.passthrough.crm.rules[0]",
		Approvers: []string{"group:finance"}, MinApprovals: 1}, nil
}
func (holdAll) MayConnect(broker.Caller, string) bool { return true }

// call calls tool with args.
func (s *previewStack) call(t *testing.T, tool, args string) (broker.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.b.Call(ctx, broker.Call{Caller: s.caller, Door: "http", Tool: tool, Args: json.RawMessage(args)})
}

// held calls tool and returns the approval request it is held on.
func (s *previewStack) held(t *testing.T, tool, args string) approvals.Request {
	t.Helper()
	res, err := s.call(t, tool, args)
	if err != nil || res.Pending == nil {
		t.Fatalf("%s %s = %+v, %v; want approval_pending", tool, args, res, err)
	}
	r, err := s.svc.Get(context.Background(), res.Pending.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// bumps returns the bumps of every promo row by id.
func (s *previewStack) bumps(t *testing.T) map[int]int {
	t.Helper()
	rows, _ := s.admin.Query(context.Background(), "SELECT id, bumps FROM promo ORDER BY id")
	out := map[int]int{}
	for rows.Next() {
		var id, n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// noLocksLeft checks that no session holds a lock on the preview's tables
// or sits in a transaction, and that the previewed rows can be written at
// once.
func (s *previewStack) noLocksLeft(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var n int
	err := s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relname IN ('promo', 'slow') AND l.pid <> pg_backend_pid()`).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("locks left on the previewed tables: %d, %v", n, err)
	}
	err = s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE '%in transaction%'`).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("sessions left in a transaction: %d, %v", n, err)
	}
	tx, err := s.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '2s'; UPDATE promo SET note = note"); err != nil {
		t.Errorf("the previewed rows are still locked: %v", err)
	}
}

func TestPreviewShownMaskedAndNothingCommitted(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		s := newPreviewStack(t, open(t))
		r := s.held(t, "promo_bump", `{"tier":"a"}`)
		p := r.Preview
		if p == nil || p.Unavailable != "" || p.RowsAffected != 2 || p.Image != broker.ImageAfter || p.Truncated || !p.Intact() {
			t.Fatalf("preview = %+v", p)
		}
		shown, _ := json.Marshal(r.ApprovalInfo)
		for _, want := range []string{`"rows_affected":2`, `"bumps":1`, maskedCard, `"note":"[REDACTED]"`, `"hash":"` + p.Hash} {
			if !strings.Contains(string(shown), want) {
				t.Errorf("the request as approvers see it lacks %s: %s", want, shown)
			}
		}
		if strings.Contains(string(shown), card) || strings.Contains(string(shown), rawNote) {
			t.Errorf("the request shows an unmasked value: %s", shown)
		}
		// The preview is stored: a fresh read (the API, another instance)
		// shows the same preview.
		rec, err := s.svc.Get(context.Background(), r.ID)
		info := rec.ApprovalInfo
		if err != nil || info.Preview == nil || info.Preview.Hash != p.Hash || string(info.Preview.Sample) != string(p.Sample) {
			t.Fatalf("stored preview = %+v, %v", info.Preview, err)
		}
		// Nothing committed, nothing locked.
		if b := s.bumps(t); b[1] != 0 || b[2] != 0 || b[3] != 0 {
			t.Errorf("the preview changed rows: %v", b)
		}
		s.noLocksLeft(t)
		// The audit record of the request counts, never shows, the sample.
		var requested broker.Event
		for _, ev := range s.rec.Events() {
			if ev.Kind == broker.EventApprovalRequested && ev.ApprovalID == r.ID {
				requested = ev
			}
		}
		detail, _ := json.Marshal(requested.Detail)
		if !strings.Contains(string(detail), `"preview":{"hash":"`+p.Hash+`","rows_affected":2,"truncated":false}`) || strings.Contains(string(detail), "sample") {
			t.Errorf("approval_requested detail = %s", detail)
		}
		// A repeat while pending finds the request: no second preview.
		if again := s.held(t, "promo_bump", `{"tier":"a"}`); again.ID != r.ID || again.Preview.Hash != p.Hash {
			t.Errorf("repeat made another request: %s", again.ID)
		}
	})
}

// approve has an approver approve request id.
func (s *previewStack) approve(t *testing.T, id string) {
	t.Helper()
	if _, err := s.svc.Decide(context.Background(), id, ana, true, "looks right", "http"); err != nil {
		t.Fatal(err)
	}
}

func TestPreviewStaleRunRefusedThenAskedAgain(t *testing.T) {
	backends(t, func(t *testing.T, open opener) {
		s := newPreviewStack(t, open(t))
		ctx := context.Background()
		r := s.held(t, "promo_bump", `{"tier":"a"}`)
		s.approve(t, r.ID)
		// The data changes between the approval and the run.
		if _, err := s.admin.Exec(ctx, `INSERT INTO promo (id, email, card, note, tier) VALUES (4, 'bo@example.com', '4111111111111111', 'x', 'a')`); err != nil {
			t.Fatal(err)
		}
		_, err := s.call(t, "promo_bump", `{"tier":"a"}`)
		want := "the data changed since it was approved: 2 rows previewed, 3 now; nothing was changed; ask again"
		if broker.CodeOf(err) != broker.CodeApprovalStale || !strings.Contains(err.Error(), want) {
			t.Fatalf("run on changed data = %v; want approval_stale: %s", err, want)
		}
		if b := s.bumps(t); b[1]+b[2]+b[3]+b[4] != 0 {
			t.Fatalf("the refused run changed rows: %v", b)
		}
		s.noLocksLeft(t)
		got, _ := s.svc.Get(ctx, r.ID)
		if got.Status != broker.ApprovalStale || got.ErrorCode != string(broker.CodeApprovalStale) || !strings.Contains(got.Reason, want) {
			t.Errorf("request after the refused run = %s %s %q", got.Status, got.ErrorCode, got.Reason)
		}
		var call broker.Event
		for _, ev := range s.rec.Events() {
			if ev.Kind == broker.EventToolCall && ev.ApprovalID == r.ID {
				call = ev
			}
		}
		if call.ErrorCode != string(broker.CodeApprovalStale) || call.Status != broker.StatusDenied || call.Detail["preview_rows"] != int64(2) {
			t.Errorf("the refused run's record = %+v", call)
		}
		if k := s.rec.kinds(r.ID); !equalKinds(k, []broker.EventKind{broker.EventApprovalRequested, broker.EventApprovalVoted, broker.EventApprovalDecided, broker.EventApprovalConsumed}) {
			t.Errorf("approval events = %v", k)
		}

		// Asked again: a new request with a fresh preview, which runs once.
		again := s.held(t, "promo_bump", `{"tier":"a"}`)
		if again.ID == r.ID || again.Preview == nil || again.Preview.RowsAffected != 3 || again.Preview.Hash == r.Preview.Hash {
			t.Fatalf("asked again: %s %+v", again.ID, again.Preview)
		}
		s.approve(t, again.ID)
		for range 3 {
			res, err := s.call(t, "promo_bump", `{"tier":"a"}`)
			if err != nil || res.Pending != nil || !strings.Contains(string(res.Value), `"row_count":3`) {
				t.Fatalf("approved run = %+v %s, %v", res, res.Value, err)
			}
		}
		if b := s.bumps(t); b[1] != 1 || b[2] != 1 || b[3] != 0 || b[4] != 1 {
			t.Errorf("bumps after the approved run and its repeats = %v; want once per previewed row", b)
		}
	})
}

func TestPreviewToleranceAndOptOut(t *testing.T) {
	s := newPreviewStack(t, newEnv(t, sqliteDB(t)))
	ctx := context.Background()

	// Within the declared tolerance, a changed count still runs.
	r := s.held(t, "promo_bump_loose", `{"tier":"a"}`)
	if r.Preview == nil || r.Preview.RowsAffected != 2 || r.Preview.Tolerance != (broker.Tolerance{Rows: 1}) {
		t.Fatalf("preview = %+v", r.Preview)
	}
	if !strings.Contains(broker.PreviewHeadline(r.Preview), "may change up to 1 row more or fewer") {
		t.Errorf("headline = %q", broker.PreviewHeadline(r.Preview))
	}
	s.approve(t, r.ID)
	if _, err := s.admin.Exec(ctx, `INSERT INTO promo (id, email, card, note, tier) VALUES (4, 'bo@example.com', '4111111111111111', 'x', 'a')`); err != nil {
		t.Fatal(err)
	}
	if res, err := s.call(t, "promo_bump_loose", `{"tier":"a"}`); err != nil || !strings.Contains(string(res.Value), `"row_count":3`) {
		t.Fatalf("run within the tolerance = %s, %v", res.Value, err)
	}

	// A tool that opts out shows why, and runs as approved.
	r = s.held(t, "promo_reset", `{"tier":"a"}`)
	want := "the tool opts out: the reset also notifies the loyalty system, which a rollback cannot undo"
	if r.Preview == nil || r.Preview.Unavailable != want || r.Preview.Code != broker.CodePreviewUnavailable {
		t.Fatalf("opted-out preview = %+v", r.Preview)
	}
	shown, _ := json.Marshal(r.ApprovalInfo)
	if !strings.Contains(string(shown), `"preview":{"unavailable":"`+want+`","code":"preview_unavailable"}`) {
		t.Errorf("shown = %s", shown)
	}
	if b := s.bumps(t); b[1] != 1 {
		t.Fatalf("bumps before the reset = %v", b)
	}
	s.approve(t, r.ID)
	if _, err := s.call(t, "promo_reset", `{"tier":"a"}`); err != nil {
		t.Fatal(err)
	}
	if b := s.bumps(t); b[1] != 0 || b[4] != 0 {
		t.Errorf("bumps after the approved reset = %v", b)
	}
}

func TestPreviewSlowOrLockedIsUnavailableNotAHang(t *testing.T) {
	s := newPreviewStack(t, newEnv(t, sqliteDB(t)))
	ctx := context.Background()

	// Every row update sleeps 30s; the preview's limit is 300ms.
	r := s.held(t, "slow_touch", `{"id":1}`)
	if r.Preview == nil || r.Preview.Code != broker.CodeTimeout ||
		r.Preview.Unavailable != "the preview ran longer than its 300ms limit on target crm_slow; nothing was changed" {
		t.Fatalf("slow preview = %+v", r.Preview)
	}
	var v int
	if err := s.admin.QueryRow(ctx, "SELECT v FROM slow WHERE id = 1").Scan(&v); err != nil || v != 0 {
		t.Errorf("slow row after the preview = %d, %v", v, err)
	}
	var sleeping int
	if err := s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'UPDATE slow%'`).Scan(&sleeping); err != nil || sleeping != 0 {
		t.Errorf("the slow preview still runs on the server: %d, %v", sleeping, err)
	}
	s.noLocksLeft(t)

	// Rows another transaction holds: the preview waits 200ms, not for it.
	tx, err := s.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT * FROM promo WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	r = s.held(t, "promo_bump", `{"tier":"a"}`)
	_ = tx.Rollback(ctx)
	if r.Preview == nil || r.Preview.Code != broker.CodeTimeout || !strings.Contains(r.Preview.Unavailable, "locked by another transaction") {
		t.Fatalf("preview of locked rows = %+v", r.Preview)
	}
	// A request without a count runs unmatched once approved.
	s.approve(t, r.ID)
	if res, err := s.call(t, "promo_bump", `{"tier":"a"}`); err != nil || !strings.Contains(string(res.Value), `"row_count":2`) {
		t.Fatalf("approved run without a preview count = %s, %v", res.Value, err)
	}
}

func TestPreviewHTTPRequest(t *testing.T) {
	s := newPreviewStack(t, newEnv(t, sqliteDB(t)))
	r := s.held(t, "billing_cancel_order", `{"order_id":"o-77"}`)
	p := r.Preview
	if p == nil || p.RowsAffected != -1 || p.Image != broker.ImageBefore || !p.Intact() {
		t.Fatalf("http preview = %+v", p)
	}
	sample := string(p.Sample)
	if !strings.Contains(sample, `"id":"o-77"`) || !strings.Contains(sample, maskedCard) || !strings.Contains(sample, `"note":"[REDACTED]"`) ||
		strings.Contains(sample, card) || strings.Contains(sample, rawNote) {
		t.Errorf("http preview sample = %s", sample)
	}
	if lines := approvals.SampleTable(p.Sample, 10, 24); len(lines) != 2 || !strings.HasPrefix(lines[1], "o-77  250    ************1111  [REDACTED]") {
		t.Errorf("sample table = %q", lines)
	}
	// Repeats while pending send no second preview request; the approved
	// request is sent once, unmatched.
	s.held(t, "billing_cancel_order", `{"order_id":"o-77"}`)
	if gets, cancels := s.api.counts(); gets != 1 || cancels != 0 {
		t.Fatalf("before approval: %d previews, %d cancels", gets, cancels)
	}
	s.approve(t, r.ID)
	for range 2 {
		if res, err := s.call(t, "billing_cancel_order", `{"order_id":"o-77"}`); err != nil || !strings.Contains(string(res.Value), `"cancelled":true`) {
			t.Fatalf("approved cancel = %s, %v", res.Value, err)
		}
	}
	if gets, cancels := s.api.counts(); gets != 1 || cancels != 1 {
		t.Errorf("after approval: %d previews, %d cancels; want 1 and 1", gets, cancels)
	}
}

func TestPreviewTamperedRefused(t *testing.T) {
	e := newEnv(t, sqliteDB(t))
	s := newPreviewStack(t, e)
	r := s.held(t, "promo_bump", `{"tier":"a"}`)
	s.approve(t, r.ID)
	// Someone with write access to the store swaps in a smaller effect.
	if _, err := e.db.Exec(`UPDATE approvals SET preview = replace(preview, '"rows_affected":2', '"rows_affected":3') WHERE id = ?`, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.Exec(context.Background(), `INSERT INTO promo (id, email, card, note, tier) VALUES (4, 'bo@example.com', '4111111111111111', 'x', 'a')`); err != nil {
		t.Fatal(err)
	}
	_, err := s.call(t, "promo_bump", `{"tier":"a"}`)
	if broker.CodeOf(err) != broker.CodeInternal || !strings.Contains(err.Error(), "does not match its hash") {
		t.Fatalf("run on a tampered preview = %v", err)
	}
	if b := s.bumps(t); b[1]+b[2]+b[4] != 0 {
		t.Errorf("the refused run changed rows: %v", b)
	}
	if got, _ := s.svc.Get(context.Background(), r.ID); got.Status != broker.ApprovalConsumed || got.ErrorCode != string(broker.CodeInternal) {
		t.Errorf("request after the refusal = %s %s", got.Status, got.ErrorCode)
	}
}

// TestPreviewPassthroughStatement previews a held passthrough write with
// the proxy's hook, on a connection of a role that is not the admin's.
func TestPreviewPassthroughStatement(t *testing.T) {
	s := newPreviewStack(t, newEnv(t, sqliteDB(t)), broker.Route{Kind: broker.KindSQL, Target: "crm"})
	ctx := context.Background()
	role := fmt.Sprintf("pt_preview_%d", time.Now().UnixNano()%1e9)
	if _, err := s.admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'pw-preview-1'; GRANT SELECT, UPDATE ON promo TO %[1]s`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = s.admin.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %[1]s", role))
	})
	cfg := s.admin.Config().Copy()
	cfg.User, cfg.Password = role, "pw-preview-1"
	text := "UPDATE promo SET tier = 'z', changed_by = current_user WHERE tier = 'a'"
	hook := func(ctx context.Context) (broker.Preview, error) {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return broker.Preview{}, err
		}
		defer conn.Close(context.Background())
		return postgres.PreviewConn(ctx, conn, text, nil, postgres.PreviewOptions{Target: "crm"})
	}
	st := broker.Statement{Kind: broker.KindSQL, Class: broker.ClassWrite, Command: "UPDATE", Tables: []string{"promo"}, Text: text}
	_, err := s.b.Statement(ctx, broker.StatementCall{Caller: s.caller, Door: "pgwire", Target: "crm", Statement: st, Preview: hook})
	if broker.CodeOf(err) != broker.CodeApprovalPending {
		t.Fatalf("held statement = %v", err)
	}
	list, err := s.svc.Approvals(ctx, s.caller.Principal, broker.ApprovalFilter{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("requests = %v, %v", list, err)
	}
	p := list[0].Preview
	sample := string(p.Sample)
	if p == nil || p.RowsAffected != 2 || p.Image != broker.ImageAfter || !strings.Contains(sample, `"changed_by":"`+role+`"`) ||
		!strings.Contains(sample, `"note":"[REDACTED]"`) || !strings.Contains(sample, maskedCard) ||
		strings.Contains(sample, rawNote) || strings.Contains(sample, card) {
		t.Fatalf("passthrough preview = %+v %s", p, sample)
	}
	var n int
	if err := s.admin.QueryRow(ctx, "SELECT count(*) FROM promo WHERE tier = 'z'").Scan(&n); err != nil || n != 0 {
		t.Errorf("the passthrough preview committed: %d rows, %v", n, err)
	}
	s.noLocksLeft(t)

	// Without the hook the request says why it has none.
	st.Text = "UPDATE promo SET tier = 'y' WHERE tier = 'b'"
	_, err = s.b.Statement(ctx, broker.StatementCall{Caller: s.caller, Door: "pgwire", Target: "crm", Statement: st})
	if broker.CodeOf(err) != broker.CodeApprovalPending {
		t.Fatalf("held statement without a hook = %v", err)
	}
	list, _ = s.svc.Approvals(ctx, s.caller.Principal, broker.ApprovalFilter{Limit: 10})
	found := 0
	for _, a := range list {
		if strings.Contains(string(a.Args), "'y'") {
			found++
			if a.Preview == nil || a.Preview.Unavailable != "the sql passthrough does not preview statements" {
				t.Fatalf("preview of a statement held without a hook = %+v", a.Preview)
			}
		}
	}
	if found != 1 {
		t.Fatalf("requests of the statement held without a hook: %d", found)
	}
}

// fakeSlackAPI answers chat.postMessage and chat.update and keeps what
// was posted.
type fakeSlackAPI struct {
	*httptest.Server
	mu    sync.Mutex
	posts []url.Values
}

func newFakeSlackAPI(t *testing.T) *fakeSlackAPI {
	f := &fakeSlackAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		f.posts = append(f.posts, r.Form)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true, "channel": "C0APPROVALS", "ts": "1700000000.000100"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSlackAPI) blocks() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.posts {
		out = append(out, p.Get("blocks"))
	}
	return out
}

func TestPreviewInSlackIsMasked(t *testing.T) {
	api := newFakeSlackAPI(t)
	n, err := aslack.New(aslack.Config{Mode: aslack.ModeHTTP, BotToken: "xoxb-test-token", SigningSecret: "signing-secret-0123456789",
		Channel: "#approvals", APIURL: api.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	s := newPreviewStack(t, newEnv(t, sqliteDB(t), func(c *approvals.Config) { c.Announcer = n }))
	r := s.held(t, "promo_bump", `{"tier":"a"}`)
	s.approve(t, r.ID)
	posted := api.blocks()
	if len(posted) < 2 {
		t.Fatalf("slack calls = %d; want the post and its update", len(posted))
	}
	for i, blocks := range posted {
		for _, want := range []string{"rows affected: 2", maskedCard, "[REDACTED]", "bumps"} {
			if !strings.Contains(blocks, want) {
				t.Errorf("slack message %d lacks %q: %s", i, want, blocks)
			}
		}
		if strings.Contains(blocks, card) || strings.Contains(blocks, rawNote) {
			t.Errorf("slack message %d shows an unmasked value: %s", i, blocks)
		}
	}
}
