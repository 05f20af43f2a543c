package detect

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// BenchmarkLiveStep measures the live detector's throughput over a real
// SQLite audit log: reading leaves, parsing, the rules and the sealed
// alert commits (1 event in 100 raises or extends an alert).
func BenchmarkLiveStep(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		b.StopTimer()
		f := newLiveFixture(b, testDirectory)
		leaves := make([][]byte, n)
		for i := range leaves {
			ev := read(fmt.Sprintf("u%d", i%500), fmt.Sprintf("p%d", i%5000))
			if i%100 == 0 {
				ev = read("nurse-ann", "pat-vip")
			}
			ev.Outcome, ev.Allowed, ev.Action = "0", true, "R"
			ev.Time = f.now.Add(time.Duration(i) * 100 * time.Millisecond)
			leaves[i] = ev.Leaf()
		}
		if err := appendLeaves(f, leaves); err != nil {
			b.Fatal(err)
		}
		l := f.live(nil)
		b.StartTimer()
		got, err := l.Step(context.Background())
		if err != nil || got != n {
			b.Fatalf("processed %d: %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

func appendLeaves(f *liveFixture, leaves [][]byte) error {
	return f.logStore.Update(context.Background(), func(w store.Writer) error {
		for _, l := range leaves {
			if _, err := w.AppendAudit(l); err != nil {
				return err
			}
		}
		return nil
	})
}
