package recordings_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/toolgate/toolgate/recordings"
)

func BenchmarkRecordSQLite(b *testing.B)   { benchRecord(b, openSQLite) }
func BenchmarkRecordPostgres(b *testing.B) { benchRecord(b, openPostgres) }

// benchRecord measures group-committed Record with 16 concurrent writers.
func benchRecord(b *testing.B, open opener) {
	d, _ := open(b)
	s := newStore(b, d, recordings.Config{Instance: "bench"})
	ev := event(1)
	ev.ID = ""
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((16 + procs - 1) / procs)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Record(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
