package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// The outcomes a session hands on ride in the next statement's record and
// in the close record, masked, and read back the same from a Recorder and
// from the store's JSON.
func TestOutcomesAreFoldedIntoTheNextRecord(t *testing.T) {
	e := passEnv(t, nil)
	c := e.caller(t, "tgk_good", "triage")
	ctx := context.Background()
	first, err := e.b.Statement(ctx, StatementCall{Caller: c, Door: "pgwire", Target: "db", Session: "ses_1", Statement: sqlStmt(ClassRead, "SELECT 1")})
	if err != nil {
		t.Fatal(err)
	}
	ok := StatementOutcome{ID: first.ID, Caller: c, Door: "pgwire", Target: "db", Session: "ses_1", Rows: 3, Bytes: 42, Duration: 1500 * time.Microsecond}
	failed := StatementOutcome{ID: "stm_x", Caller: c, Door: "pgwire", Target: "db", Session: "ses_1", Err: errors.New("22012: division by zero near 4242424242424242")}
	n := e.rec.count()
	second, err := e.b.Statement(ctx, StatementCall{Caller: c, Door: "pgwire", Target: "db", Session: "ses_1", Statement: sqlStmt(ClassRead, "SELECT 2"),
		Done: []StatementOutcome{ok, failed}})
	if err != nil {
		t.Fatal(err)
	}
	if e.rec.count() != n+1 {
		t.Fatalf("%d records for one statement with two outcomes, want 1", e.rec.count()-n)
	}
	ev := e.rec.last(t)
	if ev.ID != second.ID {
		t.Fatalf("last record %s, want the second statement's", ev.ID)
	}
	want := []RecordedOutcome{
		{StatementID: first.ID, Status: StatusOK, Rows: 3, Bytes: 42, ExecMS: 1.5},
		{StatementID: "stm_x", Status: StatusError, ErrorCode: string(CodeTargetError)},
	}
	check := func(how string, ev Event) {
		t.Helper()
		got := Outcomes(ev)
		if len(got) != 2 || got[0] != want[0] || got[1].StatementID != want[1].StatementID || got[1].Status != want[1].Status || got[1].ErrorCode != want[1].ErrorCode {
			t.Fatalf("%s: outcomes %+v, want %+v", how, got, want)
		}
		if strings.Contains(got[1].Error, "4242424242424242") || !strings.Contains(got[1].Error, "division by zero") {
			t.Fatalf("%s: error %q, want it masked", how, got[1].Error)
		}
	}
	check("recorder", ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var stored Event
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	check("store", stored)

	e.b.CloseSession(ctx, "ses_1", c, "pgwire", "db", SessionStats{Statements: 2, Done: []StatementOutcome{ok, failed}})
	closed := e.rec.last(t)
	if closed.Kind != EventSessionClosed {
		t.Fatalf("last record %s, want the session's close", closed.Kind)
	}
	check("close record", closed)
}

func (r *fakeRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}
