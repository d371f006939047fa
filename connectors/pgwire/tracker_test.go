package pgwire

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The server's answers, fed to a tracker as the upstream relay would.
func answer(t *testing.T, tr *tracker, answers ...string) {
	t.Helper()
	for _, a := range answers {
		var err error
		switch a {
		case "1", "2", "3":
			_, err = tr.complete(a[0])
		case "t":
			_, err = tr.paramDescription()
		case "T":
			_, err = tr.rowDescription([]pgproto3.FieldDescription{{Name: []byte("c"), DataTypeOID: 25}})
		case "n":
			_, err = tr.noData()
		case "D":
			_, err = tr.result("DataRow")
		case "C":
			_, err = tr.commandDone()
		case "E":
			tr.errorResponse()
		case "ZI", "ZT", "ZE":
			_, err = tr.readyForQuery(a[1])
		default:
			t.Fatalf("unknown answer %q", a)
		}
		if err != nil {
			t.Fatalf("answer %s: %v", a, err)
		}
	}
}

func sqlOf(st *prepared) string {
	if st == nil {
		return "<none>"
	}
	return st.sql
}

// TestTrackerRefusedParseKeepsOldStatement is the desync of issue 12: a
// Parse of an existing name fails (42P05) and the old statement stays.
func TestTrackerRefusedParseKeepsOldStatement(t *testing.T) {
	tr := newTracker()
	tr.parse("s", "UPDATE t SET x = 1", nil, false)
	tr.sync()
	answer(t, tr, "1", "ZI")
	tr.parse("s", "SELECT 1", nil, false)
	tr.sync()
	// Pipelined Bind after the Sync: the earlier batch decides.
	st, wait := tr.stmtFor("s")
	if st != nil || wait == nil || wait.kind != opParse {
		t.Fatalf("stmtFor across an unanswered batch = %q, %v; want a wait on the Parse", sqlOf(st), wait)
	}
	done := make(chan bool)
	go func() { done <- tr.await(wait) }()
	answer(t, tr, "E", "ZI")
	if !<-done {
		t.Fatal("await reported a closed tracker")
	}
	if st, wait := tr.stmtFor("s"); wait != nil || sqlOf(st) != "UPDATE t SET x = 1" {
		t.Fatalf("after 42P05: %q, %v; want the UPDATE", sqlOf(st), wait)
	}
}

// TestTrackerSameBatchTakesPendingParse: within a batch a pending Parse is
// what a later Bind finds (if it fails, the Bind is skipped).
func TestTrackerSameBatchTakesPendingParse(t *testing.T) {
	tr := newTracker()
	tr.parse("s", "UPDATE t SET x = 1", nil, false)
	tr.sync()
	answer(t, tr, "1", "ZI")
	tr.parse("s", "SELECT 1", nil, false)
	st, wait := tr.stmtFor("s")
	if wait != nil || sqlOf(st) != "SELECT 1" {
		t.Fatalf("stmtFor in the same batch = %q, %v", sqlOf(st), wait)
	}
	p := tr.bind("", st, nil, false)
	o := tr.execute(p, "tag", false, false)
	tr.sync()
	answer(t, tr, "E") // 42P05 on the Parse: Bind and Execute are skipped
	if o.state != opSkipped {
		t.Fatalf("Execute after a failed Parse: state %d, want skipped", o.state)
	}
	answer(t, tr, "ZI")
	if got := tr.statements()["s"]; got != "UPDATE t SET x = 1" {
		t.Fatalf("statement s = %q", got)
	}
}

// TestTrackerErrorSkipsUntilSync: after an error nothing of the batch
// changes the view, a Query included, and later messages are refused
// from the queue.
func TestTrackerErrorSkipsUntilSync(t *testing.T) {
	tr := newTracker()
	tr.parse("a", "SELECT 1/0", nil, false)
	p := tr.bind("", &prepared{sql: "SELECT 1/0"}, nil, false)
	e := tr.execute(p, nil, false, false)
	tr.parse("s", "SELECT card", nil, false)
	q := tr.query(nil, false, false)
	answer(t, tr, "1", "2", "E")
	if e.state != opFailed || q.state != opSkipped {
		t.Fatalf("states %d %d", e.state, q.state)
	}
	if !tr.skipping() {
		t.Fatal("the tracker does not know the server skips")
	}
	if tr.parse("b", "SELECT 2", nil, false) != nil || tr.query(nil, false, false) != nil {
		t.Fatal("messages after a known error were queued")
	}
	tr.sync()
	answer(t, tr, "ZI")
	if tr.skipping() {
		t.Fatal("still skipping after Sync")
	}
	got := tr.statements()
	if got["a"] != "SELECT 1/0" || got["s"] != "" || got["b"] != "" {
		t.Fatalf("statements = %v", got)
	}
}

// TestTrackerUnnamed covers the unnamed statement's lifecycle: a failed
// unnamed Parse drops the old one, a Query drops it.
func TestTrackerUnnamed(t *testing.T) {
	tr := newTracker()
	tr.parse("", "SELECT 1", nil, false)
	tr.sync()
	answer(t, tr, "1", "ZI")
	if st, _ := tr.stmtFor(""); sqlOf(st) != "SELECT 1" {
		t.Fatalf("unnamed = %q", sqlOf(st))
	}
	tr.parse("", "SELEC", nil, false)
	tr.sync()
	answer(t, tr, "E", "ZI")
	if st, _ := tr.stmtFor(""); st != nil {
		t.Fatalf("a failed unnamed Parse left %q", sqlOf(st))
	}
	tr.parse("", "SELECT 2", nil, false)
	tr.sync()
	answer(t, tr, "1", "ZI")
	tr.query(nil, false, false)
	if st, wait := tr.stmtFor(""); st != nil || wait != nil {
		t.Fatalf("unnamed after a pending Query = %q, %v", sqlOf(st), wait)
	}
	answer(t, tr, "T", "D", "C", "ZI")
	if st, _ := tr.stmtFor(""); st != nil {
		t.Fatalf("a Query left the unnamed statement %q", sqlOf(st))
	}
}

// TestTrackerPortalLifecycle: portals end with the transaction; named
// portals survive a Sync inside an explicit one.
func TestTrackerPortalLifecycle(t *testing.T) {
	tr := newTracker()
	tr.parse("s", "SELECT 1", nil, false)
	st, _ := tr.stmtFor("s")
	tr.bind("p", st, nil, false)
	tr.sync()
	answer(t, tr, "1", "2", "ZT") // inside BEGIN
	if p, _ := tr.portalFor("p"); p == nil || p.stmt.sql != "SELECT 1" {
		t.Fatal("named portal gone after Sync in an explicit transaction")
	}
	tr.query(nil, false, false) // COMMIT
	answer(t, tr, "C", "ZI")
	if p, _ := tr.portalFor("p"); p != nil {
		t.Fatal("portal survived the end of its transaction")
	}
	// A failed Bind takes its portal with it.
	tr.bind("p", st, nil, false)
	tr.sync()
	answer(t, tr, "E", "ZI")
	if p, _ := tr.portalFor("p"); p != nil {
		t.Fatal("a failed Bind left its portal")
	}
}

// TestTrackerDescribeBelongsToItsStatement: a re-Parse makes a new
// statement without the old one's columns.
func TestTrackerDescribeBelongsToItsStatement(t *testing.T) {
	tr := newTracker()
	tr.parse("", "SELECT id", nil, false)
	st1, _ := tr.stmtFor("")
	tr.describeStmt("", st1, false)
	tr.sync()
	answer(t, tr, "1", "t", "T", "ZI")
	if _, ok := tr.describedFields(st1); !ok {
		t.Fatal("Describe answer not stored")
	}
	tr.parse("", "SELECT card_number", nil, false)
	st2, _ := tr.stmtFor("")
	if st2 == st1 {
		t.Fatal("re-Parse returned the old statement")
	}
	if _, ok := tr.describedFields(st2); ok || !tr.needsDescribe(&portal{stmt: st2}) {
		t.Fatal("the re-parsed statement carries the old Describe")
	}
}

// TestTrackerTaint: SQL that creates or drops statements makes every name
// unknown.
func TestTrackerTaint(t *testing.T) {
	tr := newTracker()
	tr.parse("s", "SELECT 1", nil, false)
	tr.sync()
	answer(t, tr, "1", "ZI")
	tr.query(nil, true, false) // DEALLOCATE s; PREPARE s AS UPDATE ...
	if st, wait := tr.stmtFor("s"); st != nil || wait != nil {
		t.Fatalf("after a pending taint: %q, %v", sqlOf(st), wait)
	}
	answer(t, tr, "C", "C", "ZI")
	if len(tr.statements()) != 0 {
		t.Fatalf("statements after a taint: %v", tr.statements())
	}
}

// TestTrackerClose: a Close in the batch hides the name.
func TestTrackerClose(t *testing.T) {
	tr := newTracker()
	tr.parse("s", "SELECT 1", nil, false)
	tr.sync()
	answer(t, tr, "1", "ZI")
	tr.closeStmt("s")
	if st, _ := tr.stmtFor("s"); st != nil {
		t.Fatal("a pending Close left the statement visible")
	}
	tr.sync()
	answer(t, tr, "3", "ZI")
	if len(tr.statements()) != 0 {
		t.Fatal("Close did not remove the statement")
	}
}

// TestTrackerProtocolErrors: answers the model cannot place are errors.
func TestTrackerProtocolErrors(t *testing.T) {
	tr := newTracker()
	var pe errProtocol
	if _, err := tr.complete('2'); !errors.As(err, &pe) {
		t.Fatalf("BindComplete with nothing sent: %v", err)
	}
	if _, err := tr.result("DataRow"); !errors.As(err, &pe) {
		t.Fatalf("DataRow with nothing sent: %v", err)
	}
	tr.parse("s", "SELECT 1", nil, false)
	if _, err := tr.readyForQuery('I'); !errors.As(err, &pe) {
		t.Fatalf("ReadyForQuery for a Parse: %v", err)
	}
	if _, err := tr.copyInResponse(); !errors.As(err, &pe) {
		t.Fatalf("CopyInResponse for a Parse: %v", err)
	}
}

// TestTrackerCloseWakesWaiters: a session that ends releases a waiting
// client relay.
func TestTrackerCloseWakesWaiters(t *testing.T) {
	tr := newTracker()
	tr.parse("s", "SELECT 1", nil, false)
	o := tr.sync()
	done := make(chan bool)
	go func() { done <- tr.await(o) && tr.awaitIdle() }()
	time.Sleep(10 * time.Millisecond)
	tr.close()
	if <-done {
		t.Fatal("await after close reported success")
	}
}

// TestTrackerSkippedDescribe: a Describe the server skipped leaves its
// statement to be described again.
func TestTrackerSkippedDescribe(t *testing.T) {
	tr := newTracker()
	st := tr.parse("s", "SELECT 1", nil, false)
	p := tr.bind("", &prepared{sql: "SELECT 1/0"}, nil, false)
	tr.execute(p, nil, false, false)
	tr.describeStmt("s", st, false)
	tr.sync()
	answer(t, tr, "1", "2", "E", "ZI")
	if tr.isDescribing(st) || !tr.needsDescribe(&portal{stmt: st}) {
		t.Fatal("a skipped Describe still counts as sent")
	}
}
