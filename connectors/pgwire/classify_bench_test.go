package pgwire

import "testing"

func BenchmarkClassify(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Classify("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;")
	}
}
