package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// BenchmarkRecord measures durable appends on SQLite (synchronous=FULL,
// a real disk) from many concurrent callers, in three configurations that
// take turns within each round (the order rotating), so all three see the
// same machine:
//
//   - log: Log.Record, which batches concurrent events into one
//     store.Update (one transaction) per batch;
//   - update-each: one store.Update per event, as Record did before, with
//     the store's group commit sharing fsyncs between the Updates;
//   - update-each-json: the same with the leaf encoded by encoding/json
//     from AuditEvent(), as it was before: the previous way.
//
// It reports appends/s and appends/commit (events per fsync) of each, and
// the ratios of log to the other two. One b.Loop iteration is one round.
//
//	go test -run '^$' -bench 'Record$' -benchtime 10x -count 3 ./internal/audit
func BenchmarkRecord(b *testing.B) {
	ev := testEvent(1)
	modes := []struct {
		name   string
		record func(st store.Backend, l *Log) error
	}{
		{"log", func(_ store.Backend, l *Log) error { return l.Record(context.Background(), ev) }},
		{"update-each", func(st store.Backend, _ *Log) error { return appendOne(st, ev.Leaf()) }},
		{"update-each-json", func(st store.Backend, _ *Log) error { return appendOne(st, referenceLeaf(b, ev)) }},
	}
	for _, clients := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			st, err := sqlite.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			l := NewLog(st, 10*time.Second)
			perRound := max(4000, 40*clients)
			n := make([]int64, len(modes))
			commits := make([]int64, len(modes))
			took := make([]time.Duration, len(modes))
			round := 0
			for b.Loop() {
				for k := range modes {
					m := (round + k) % len(modes)
					before := st.Stats().Commits
					t0 := time.Now()
					concurrently(b, clients, perRound, func() error { return modes[m].record(st, l) })
					took[m] += time.Since(t0)
					commits[m] += st.Stats().Commits - before
					n[m] += int64(perRound)
				}
				round++
			}
			var total int64
			rate := make([]float64, len(modes))
			for m, mode := range modes {
				total += n[m]
				rate[m] = float64(n[m]) / took[m].Seconds()
				b.ReportMetric(rate[m], mode.name+"-appends/s")
				b.ReportMetric(float64(n[m])/float64(max(1, commits[m])), mode.name+"-appends/commit")
			}
			if got := auditSize(b, st); got != total {
				b.Fatalf("log holds %d leaves after %d appends", got, total)
			}
			b.ReportMetric(rate[0]/rate[1], "log/update-each")
			b.ReportMetric(rate[0]/rate[2], "log/update-each-json")
		})
	}
}

// concurrently calls fn total times from clients goroutines.
func concurrently(b *testing.B, clients, total int, fn func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(total) {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// appendOne appends one leaf in its own store.Update.
func appendOne(st store.Backend, leaf []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return st.Update(ctx, func(tx store.Writer) error {
		_, err := tx.AppendAudit(leaf)
		return err
	})
}

func auditSize(b *testing.B, st store.Backend) (n int64) {
	if err := st.View(context.Background(), func(r store.Reader) (err error) {
		n, err = r.AuditSize()
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return n
}

var bigLog struct {
	once sync.Once
	st   *memstore.Store
	s    note.Signer
	v    note.Verifier
}

const bigLeaves = 1_000_000

// bigStore builds a 1,000,000-event log with a checkpoint every 50,000
// events (about one per second at the target append rate).
func bigStore(b *testing.B) (*memstore.Store, note.Verifier) {
	bigLog.once.Do(func() {
		bigLog.s, bigLog.v = testKeys(b, testOrigin)
		st := memstore.New()
		leaves := make([][]byte, bigLeaves)
		var wg sync.WaitGroup
		w := runtime.GOMAXPROCS(0)
		for g := range w {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < bigLeaves; i += w {
					leaves[i] = testEvent(i).Leaf()
				}
			}()
		}
		wg.Wait()
		cp := NewCheckpointer(st, NewIntegrator(st), bigLog.s, CheckpointerOptions{})
		for i := 0; i < bigLeaves; i += 50_000 {
			if err := st.Update(context.Background(), func(w store.Writer) error {
				for _, l := range leaves[i : i+50_000] {
					if _, err := w.AppendAudit(l); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if _, err := cp.Checkpoint(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		bigLog.st = st
	})
	if bigLog.st == nil {
		b.Fatal("building the log failed")
	}
	return bigLog.st, bigLog.v
}

// BenchmarkVerify1M verifies the whole 1,000,000-event log (target <= 10 s).
func BenchmarkVerify1M(b *testing.B) {
	st, v := bigStore(b)
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
	// CPU seconds, because wall time on a shared machine measures the
	// neighbours; divide by the cores for the wall time on an idle machine.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(bigLeaves)*float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkInclusionProof1M generates proofs for random leaves of the
// 1,000,000-event log from tiles.
func BenchmarkInclusionProof1M(b *testing.B) {
	st, _ := bigStore(b)
	p := NewProver(st)
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.InclusionProof(ctx, rng.Uint64N(bigLeaves), bigLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyInclusion1M verifies a proof offline: the checkpoint
// signature, then the path to the signed root.
func BenchmarkVerifyInclusion1M(b *testing.B) {
	st, v := bigStore(b)
	ctx := context.Background()
	p := NewProver(st)
	cp, err := p.LatestCheckpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const idx = 123_456
	prf, err := p.InclusionProof(ctx, idx, bigLeaves)
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := p.Leaf(ctx, idx)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := VerifyInclusion(leaf, idx, cp, prf, v); err != nil {
			b.Fatal(err)
		}
	}
}
