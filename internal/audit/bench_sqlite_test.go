package audit

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// BenchmarkVerify1MSQLite verifies a 1,000,000-event log kept in SQLite,
// the way `phivault audit verify` reads a data directory: leaves, tiles
// and checkpoints come from the database file (checkpoint every 50,000
// events). Building the log takes minutes and about 2 GB of disk, so the
// benchmark runs only when asked for by name (-bench Verify1MSQLite).
//
//	go test -run '^$' -bench Verify1MSQLite -benchtime 1x -count 2 -timeout 60m ./internal/audit
func BenchmarkVerify1MSQLite(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 2 GB database")
	}
	ctx := context.Background()
	s, v := testKeys(b, testOrigin)
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{})
	const step = 10_000
	leaves := make([][]byte, step)
	t0 := time.Now()
	for i := 0; i < bigLeaves; i += step {
		for k := range step {
			leaves[k] = testEvent(i + k).Leaf()
		}
		if err := st.Update(ctx, func(w store.Writer) error {
			for _, l := range leaves {
				if _, err := w.AppendAudit(l); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if (i+step)%50_000 == 0 {
			if _, err := cp.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("built 1,000,000 leaves in SQLite in %v", time.Since(t0).Round(time.Second))
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for b.Loop() {
		if rep := verifyStore(b, st, v); !rep.OK() || rep.Verified != bigLeaves {
			b.Fatalf("verify: %v", rep.Err())
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(bigLeaves)*float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}
