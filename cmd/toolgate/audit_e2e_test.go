package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/internal/testenv"
)

// auditEdits returns a config edit that adds an auditor API key, a
// calls_per_run budget on graph support-bot and, when postgresStore is
// set, a PostgreSQL store named by $E2E_STORE_DSN.
func auditEdits(auditorSum string, callsPerRun int, postgresStore bool) func(string) string {
	return func(y string) string {
		y = strings.Replace(y, "auth:\n  api_keys:\n", "auth:\n  auditors: [\"key:auditor\"]\n  api_keys:\n    - {name: auditor, sha256: \""+auditorSum+"\"}\n", 1)
		y = strings.Replace(y, "    principals: [\"key:bot\"]\n", fmt.Sprintf("    principals: [\"key:bot\"]\n    budgets: {calls_per_run: %d}\n", callsPerRun), 1)
		if postgresStore {
			y = strings.Replace(y, "store: {driver: sqlite, path: ./toolgate.db}", "store: {driver: postgres, dsn: \"${E2E_STORE_DSN}\"}", 1)
		}
		return y
	}
}

// runToolgate runs a toolgate CLI verb to completion in dir with env.
func runToolgate(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolgateBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("toolgate %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// exported is one line of `audit export` (jsonl).
type exported struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	Event struct {
		ID        string `json:"id"`
		Node      string `json:"node"`
		Run       string `json:"run"`
		Tool      string `json:"tool"`
		Status    string `json:"status"`
		ErrorCode string `json:"error_code"`
	} `json:"event"`
}

func parseExport(t *testing.T, jsonl string) []exported {
	t.Helper()
	var out []exported
	for _, line := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		if line == "" {
			continue
		}
		var e exported
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line is not JSON: %q", line)
		}
		out = append(out, e)
	}
	return out
}

func callIDOf(t *testing.T, m map[string]any) string {
	t.Helper()
	id, _ := m["call_id"].(string)
	if id == "" {
		t.Fatalf("no call_id in %v", m["_raw"])
	}
	return id
}

// TestE2EBudgetSurvivesRestart: a calls_per_run budget is kept in the
// store, so restarting the binary does not reset it.
func TestE2EBudgetSurvivesRestart(t *testing.T) {
	_, auditorSum, _ := auth.NewAPIKey()
	e := prepareE2E(t, auditEdits(auditorSum, 3, false))
	p := e.start(t)
	run := []string{"X-Toolgate-Run", "run-budget"}
	for i := range 3 {
		if status, out := p.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"hi"}`, run...); status != 200 {
			t.Fatalf("call %d: %d %v", i+1, status, out["_raw"])
		}
	}
	p.stop(t)
	p = e.start(t)
	status, out := p.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"hi"}`, run...)
	if status != http.StatusTooManyRequests || errCode(out) != "budget_exceeded" {
		t.Fatalf("4th call after restart: %d %v", status, out["_raw"])
	}
	if !strings.Contains(out["_raw"].(string), "calls_per_run 3 for run run-budget") {
		t.Errorf("the refusal does not name the budget: %v", out["_raw"])
	}
	e.api.mu.Lock()
	hits := e.api.hits
	e.api.mu.Unlock()
	if hits != 3 {
		t.Fatalf("the target was hit %d times; the refused call must not run", hits)
	}
	// Another run has its own budget.
	if status, out := p.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"hi"}`, "X-Toolgate-Run", "run-other"); status != 200 {
		t.Fatalf("another run: %d %v", status, out["_raw"])
	}
}

// TestE2ETwoInstancesOnePostgresStore runs two toolgate processes on one
// PostgreSQL store: one run's calls through both share one budget and read
// back as one trace, verify passes over both chains, and a row edited in
// the database makes verify fail naming it.
func TestE2ETwoInstancesOnePostgresStore(t *testing.T) {
	storeDSN := testenv.Postgres(t).CreateDB(t)
	auditor, auditorSum, _ := auth.NewAPIKey()
	e := prepareE2E(t, auditEdits(auditorSum, 5, true))
	e.env = append(e.env, "E2E_STORE_DSN="+storeDSN)
	a, b := e.start(t), e.start(t)

	run := []string{"X-Toolgate-Run", "run-shared"}
	var ids []string
	for i, c := range []struct {
		p          *tgProcess
		node, tool string
		body       string
	}{
		{a, "triage", "crm_find_customer", `{"email":"ada@example.com"}`},
		{b, "billing", "crm_list_orders", `{"customer_id":1}`},
		{a, "triage", "api_text", `{"word":"x"}`},
		{b, "triage", "api_text", `{"word":"y"}`},
		{a, "billing", "crm_list_orders", `{"customer_id":2}`},
	} {
		status, out := c.p.callHTTP(t, e.BotKey, c.node, c.tool, c.body, run...)
		if status != 200 {
			t.Fatalf("call %d: %d %v", i+1, status, out["_raw"])
		}
		ids = append(ids, callIDOf(t, out))
	}
	// The budget of 5 is shared: the 6th call is refused on either instance.
	for _, p := range []*tgProcess{a, b} {
		status, out := p.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"z"}`, run...)
		if status != http.StatusTooManyRequests || errCode(out) != "budget_exceeded" {
			t.Fatalf("6th call: %d %v", status, out["_raw"])
		}
	}

	// The CLI reads the store the config names: all seven calls, from two
	// chains, as one run.
	code, stdout, stderr := runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--run", "run-shared")
	if code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, stderr)
	}
	recs := parseExport(t, stdout)
	chains, nodes := map[string]bool{}, map[string]int{}
	got := map[string]exported{}
	for _, r := range recs {
		chains[r.Chain] = true
		nodes[r.Event.Node]++
		got[r.Event.ID] = r
	}
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("call %s has no record in the export", id)
		}
	}
	refused := 0
	for _, r := range recs {
		if r.Event.Status == "denied" && r.Event.ErrorCode == "budget_exceeded" {
			refused++
		}
	}
	if len(recs) != 7 || len(chains) != 2 || nodes["triage"] != 5 || nodes["billing"] != 2 || refused != 2 {
		t.Errorf("export: %d records (%d refused), %d chains, nodes %v\n%s", len(recs), refused, len(chains), nodes, stdout)
	}
	code, stdout, _ = runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--run", "run-shared", "--node", "billing", "--format", "csv")
	if code != 0 || strings.Count(stdout, "\n") != 3 || !strings.HasPrefix(stdout, "id,time,chain,seq,") {
		t.Errorf("csv export of node billing: exit %d\n%s", code, stdout)
	}

	// Over HTTP, from either instance, for the auditor only.
	for _, p := range []*tgProcess{a, b} {
		status, body := auditHTTP(t, p.URL+"/v1/audit/events?run=run-shared", auditor)
		if status != 200 || len(parseExport(t, body)) != 7 {
			t.Errorf("GET /v1/audit/events: %d\n%s", status, body)
		}
		status, body = auditHTTP(t, p.URL+"/v1/audit/events?run=run-shared", e.BotKey)
		if status != 403 || !strings.Contains(body, `"forbidden"`) {
			t.Errorf("a non-auditor read the audit: %d %s", status, body)
		}
		status, body = auditHTTP(t, p.URL+"/v1/runs/run-shared/trace", auditor)
		var tr struct {
			Run    string           `json:"run"`
			Events []map[string]any `json:"events"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &tr) != nil || tr.Run != "run-shared" || len(tr.Events) != 7 {
			t.Errorf("GET /v1/runs/run-shared/trace: %d %s", status, body)
		}
	}
	code, stdout, _ = runToolgate(t, e.dir, e.env, "replay", "run-shared", "--config", "toolgate.yaml")
	if code != 0 || !strings.Contains(stdout, "run run-shared: 7 events") || strings.Count(stdout, "crm_list_orders") != 2 {
		t.Errorf("replay: exit %d\n%s", code, stdout)
	}

	code, stdout, stderr = runToolgate(t, e.dir, e.env, "audit", "verify", "--config", "toolgate.yaml")
	if code != 0 || !strings.Contains(stdout, "audit records intact: 7 records in 2 chains") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, stdout, stderr)
	}

	// Tamper with one row directly in the database.
	victim := ids[1]
	conn, err := pgx.Connect(context.Background(), storeDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tag, err := conn.Exec(context.Background(), `UPDATE audit_events SET event = replace(event, '"customer_id":1', '"customer_id":2') WHERE id = $1`, victim)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("tamper: %v (%d rows)", err, tag.RowsAffected())
	}
	code, stdout, _ = runToolgate(t, e.dir, e.env, "audit", "verify", "--config", "toolgate.yaml")
	if code != 1 || !strings.Contains(stdout, "record "+victim+" ") || !strings.Contains(stdout, "edited") {
		t.Fatalf("audit verify after tampering: exit %d\n%s", code, stdout)
	}
}

func auditHTTP(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestE2EStoreDownAtStart: serve refuses to start without its store.
func TestE2EStoreDownAtStart(t *testing.T) {
	_, auditorSum, _ := auth.NewAPIKey()
	e := prepareE2E(t, auditEdits(auditorSum, 3, true))
	env := append(e.env, "E2E_STORE_DSN=postgres://toolgate:hunter2pw@127.0.0.1:1/store?connect_timeout=2")
	start := time.Now()
	code, _, stderr := runToolgate(t, e.dir, env, "serve", "--config", "toolgate.yaml")
	if code == 0 || !strings.Contains(stderr, "open store (postgres)") || !strings.Contains(stderr, "store does not answer") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "hunter2pw") {
		t.Fatalf("the store password leaked:\n%s", stderr)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatalf("took %s to give up", time.Since(start))
	}
}

// TestE2EKill9UnderLoad: every call whose 200 arrived has its record after
// the process is SIGKILLed mid-stream, and the chains verify.
func TestE2EKill9UnderLoad(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { kill9UnderLoad(t, store == "postgres") })
	}
}

func kill9UnderLoad(t *testing.T, postgresStore bool) {
	_, auditorSum, _ := auth.NewAPIKey()
	e := prepareE2E(t, auditEdits(auditorSum, 1000000, postgresStore))
	if postgresStore {
		e.env = append(e.env, "E2E_STORE_DSN="+testenv.Postgres(t).CreateDB(t))
	}
	p := e.start(t)

	var mu sync.Mutex
	var received []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, p.URL+"/v1/tools/crm_find_customer:call", strings.NewReader(`{"email":"ada@example.com"}`))
				req.Header.Set("Authorization", "Bearer "+e.BotKey)
				req.Header.Set("X-Toolgate-Graph", "support-bot")
				req.Header.Set("X-Toolgate-Node", "triage")
				req.Header.Set("X-Toolgate-Run", fmt.Sprintf("kill-%d", w))
				resp, err := client.Do(req)
				if err != nil {
					continue // the process is gone
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				var out struct {
					CallID string `json:"call_id"`
				}
				if err == nil && resp.StatusCode == 200 && json.Unmarshal(b, &out) == nil && out.CallID != "" {
					mu.Lock()
					received = append(received, out.CallID)
					mu.Unlock()
				}
			}
		}()
	}
	// Let calls flow, then kill mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	close(stop)
	wg.Wait()
	if len(received) < 50 {
		t.Fatalf("only %d calls succeeded before the kill", len(received))
	}
	t.Logf("%d calls answered 200 before SIGKILL", len(received))

	// Restart on the same store: it starts, and every answered call is there.
	p = e.start(t)
	code, stdout, stderr := runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--kind", "tool_call")
	if code != 0 {
		t.Fatalf("export: exit %d %s", code, stderr)
	}
	have := map[string]bool{}
	for _, r := range parseExport(t, stdout) {
		have[r.Event.ID] = true
	}
	missing := 0
	for _, id := range received {
		if !have[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d answered calls have no record after kill -9", missing, len(received))
	}
	code, stdout, stderr = runToolgate(t, e.dir, e.env, "audit", "verify", "--config", "toolgate.yaml")
	if code != 0 {
		t.Fatalf("verify after kill -9: exit %d\n%s%s", code, stdout, stderr)
	}
	// The restarted instance records on.
	if status, out := p.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"ada@example.com"}`, "X-Toolgate-Run", "after"); status != 200 {
		t.Fatalf("after restart: %d %v", status, out["_raw"])
	}
}
