package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/toolgate/toolgate/internal/testenv"
)

// budgetEdits adds a writable SQLite target "notes" with an insert tool,
// a node "writer" under rows_per_run: 2 and a node "caller" under
// calls_per_run: 5, and, with postgresStore, a PostgreSQL store.
func budgetEdits(postgresStore bool) func(string) string {
	return func(y string) string {
		y = strings.Replace(y, "targets:\n", "targets:\n  notes: {kind: sqlite, path: ./notes.db}\n", 1)
		y = strings.Replace(y, "      billing: {allow: [crm_list_orders]}\n",
			"      billing: {allow: [crm_list_orders]}\n"+
				"      writer: {allow: [notes_add], budgets: {rows_per_run: 2}}\n"+
				"      caller: {allow: [api_text], budgets: {calls_per_run: 5}}\n", 1)
		if postgresStore {
			y = strings.Replace(y, "store: {driver: sqlite, path: ./toolgate.db}", "store: {driver: postgres, dsn: \"${E2E_STORE_DSN}\"}", 1)
		}
		return y
	}
}

const notesAddTool = `{"name": "notes_add", "description": "Add a note.", "target": "notes",
  "input_schema": {"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"], "additionalProperties": false},
  "sql": {"statement": "INSERT INTO notes (body) VALUES ($1) RETURNING id, body", "args": ["body"]}}`

// TestE2EBudgetsUnderConcurrency: sixteen simultaneous inserts under
// rows_per_run: 2 never write more than two rows; the rest are refused
// with budget_exceeded before anything runs; and the rows in the database,
// the answers and the audit trail agree. Sixteen simultaneous calls under
// calls_per_run: 5 run exactly five times. Both stores, several runs.
func TestE2EBudgetsUnderConcurrency(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			e := prepareE2E(t, budgetEdits(store == "postgres"))
			if store == "postgres" {
				e.env = append(e.env, "E2E_STORE_DSN="+testenv.Postgres(t).CreateDB(t))
			}
			if err := os.WriteFile(filepath.Join(e.dir, "tools", "notes_add.json"), []byte(notesAddTool), 0o644); err != nil {
				t.Fatal(err)
			}
			notes := openNotes(t, filepath.Join(e.dir, "notes.db"))
			p := e.start(t)
			for round := range 3 {
				run := fmt.Sprintf("rows-%d", round)
				statuses := burst(16, func(i int) (int, map[string]any) {
					return p.callHTTP(t, e.BotKey, "writer", "notes_add", fmt.Sprintf(`{"body":"%s-%d"}`, run, i), "X-Toolgate-Run", run)
				})
				ok := 0
				for _, s := range statuses {
					switch {
					case s.status == 200:
						ok++
					case s.status != 429 || errCode(s.body) != "budget_exceeded":
						t.Fatalf("round %d: %d %s", round, s.status, s.body["_raw"])
					}
				}
				var inDB int
				if err := notes.QueryRow(`SELECT COUNT(*) FROM notes WHERE body LIKE ?`, run+"-%").Scan(&inDB); err != nil {
					t.Fatal(err)
				}
				okRecords, okRows, refused := auditOf(t, e, run)
				if inDB > 2 || inDB != ok || okRecords != ok || okRows != ok || refused != 16-ok {
					t.Fatalf("round %d: %d rows in the database, %d answered, audit %d ok records with %d rows and %d refusals; want at most 2 and all equal",
						round, inDB, ok, okRecords, okRows, refused)
				}
			}
			run := "calls"
			statuses := burst(16, func(int) (int, map[string]any) {
				return p.callHTTP(t, e.BotKey, "caller", "api_text", `{"word":"hi"}`, "X-Toolgate-Run", run)
			})
			ok := 0
			for _, s := range statuses {
				if s.status == 200 {
					ok++
				}
			}
			if okRecords, _, _ := auditOf(t, e, run); ok != 5 || okRecords != 5 {
				t.Fatalf("calls_per_run 5: %d answered, %d recorded as run", ok, okRecords)
			}
		})
	}
}

type answer struct {
	status int
	body   map[string]any
}

// burst runs f n times at once.
func burst(n int, f func(i int) (int, map[string]any)) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i].status, out[i].body = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func openNotes(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// auditOf reads a run's tool_call records with `toolgate audit export`:
// how many ran (status ok), the rows they recorded, and how many were
// refused with budget_exceeded.
func auditOf(t *testing.T, e *e2eEnv, run string) (ok, rows, refused int) {
	t.Helper()
	code, out, errOut := runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--run", run, "--kind", "tool_call")
	if code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct {
			Event struct {
				Status    string `json:"status"`
				Rows      int    `json:"rows"`
				ErrorCode string `json:"error_code"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		switch {
		case rec.Event.Status == "ok":
			ok++
			rows += rec.Event.Rows
		case rec.Event.ErrorCode == "budget_exceeded" && rec.Event.Rows == 0:
			refused++
		}
	}
	return ok, rows, refused
}
