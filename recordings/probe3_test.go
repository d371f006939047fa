package recordings_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProbeMulti(t *testing.T) {
	d, _ := openSQLite(t)
	ctx := context.Background()
	ev := strings.Repeat("x", 600)
	for _, ix := range strings.Fields(os.Getenv("DROPIX")) {
		if _, err := d.SQL().Exec("DROP INDEX " + ix); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{1, 16, 64} {
		q := "INSERT INTO audit_events (chain, seq, id, time_ns, kind, principal, graph, node, run, thread, tool, status, event, prev_hash, hash) VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?),", n), ",")
		seq := 0
		start := time.Now()
		const rounds = 100
		for i := 0; i < rounds; i++ {
			var args []any
			for j := 0; j < n; j++ {
				seq++
				args = append(args, fmt.Sprint("c", n), seq, fmt.Sprint(n, "-", seq), time.Now().UnixNano(), "tool_call", "key:x", "support-bot", "triage", fmt.Sprint("run-", seq%50), "th", "crm_find", "ok", ev, strings.Repeat("a", 64), strings.Repeat("b", 64))
			}
			tx, _ := d.SQL().BeginTx(ctx, nil)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
			tx.Commit()
		}
		el := time.Since(start)
		fmt.Println(n, "rows/tx:", el/rounds, "per tx,", float64(rounds*n)/el.Seconds(), "rows/s")
	}
}
