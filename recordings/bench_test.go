package recordings_test

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/toolgate/toolgate/recordings"
)

func BenchmarkRecordSQLite(b *testing.B)   { benchRecord(b, openSQLite) }
func BenchmarkRecordPostgres(b *testing.B) { benchRecord(b, openPostgres) }

// benchRecord measures group-committed Record with 16 concurrent writers.
// Besides records/s it reports the CPU time this process spent per record
// (the Postgres server's share is not included), which stays meaningful on
// a machine shared with other work.
func benchRecord(b *testing.B, open opener) {
	d, _ := open(b)
	s := newStore(b, d, recordings.Config{Instance: "bench"})
	ev := event(1)
	ev.ID = ""
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((16 + procs - 1) / procs)
	b.ReportAllocs()
	cpu0 := cpuTime()
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
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
	if st := s.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/batch")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkRecordSerialSQLite(b *testing.B) { benchRecordSerial(b, openSQLite) }

// benchRecordSerial measures Record from one caller: every record is its
// own commit, the latency a lone call waits for its audit record.
func benchRecordSerial(b *testing.B, open opener) {
	d, _ := open(b)
	s := newStore(b, d, recordings.Config{Instance: "bench"})
	ev := event(1)
	ev.ID = ""
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Record(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}
