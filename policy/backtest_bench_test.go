package policy

import (
	"context"
	"fmt"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// BenchmarkBacktest decides recorded calls again: half of them hold a
// masked email that a condition reads, settled by the baseline's facts.
func BenchmarkBacktest(b *testing.B) {
	r := newRecorder(b)
	e := newEngine(b, supportBot(), NewMemoryCounters())
	d := broker.Decision{Effect: broker.EffectAllow, Rule: "graphs.support-bot.nodes.refund.rules[2]", PolicyVersion: e.PolicyVersion()}
	var evs []broker.Event
	for i := range 1000 {
		email := fmt.Sprintf(`{"email":"user%d@example.com"}`, i)
		if i%2 == 1 {
			email = `{"email":"not masked"}`
			d.Rule = "graphs.support-bot.nodes.refund.allow[1]"
		}
		evs = append(evs, r.call("refund", "crm_find_customer", email, d))
	}
	b.ResetTimer()
	for range b.N {
		rep, err := Backtest(context.Background(), BacktestConfig{Candidate: e, Baseline: e}, events(evs...))
		if err != nil || rep.Evaluated != len(evs) {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/record")
}
