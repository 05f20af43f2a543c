package audit

import (
	"context"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// BenchmarkIndexCost measures, side by side on one batch of 32,768
// plausible leaves, what integration spends on hashing them into the tree
// (tiles) and on indexing them (patients, user, hour bucket): the ratio is
// the index's share of the integrator's work.
func BenchmarkIndexCost(b *testing.B) {
	st := memstore.New()
	appendLeaves(b, st, 0, integrateBatch)
	var leaves [][]byte
	if err := st.View(context.Background(), func(r store.Reader) (err error) {
		leaves, err = r.AuditLeaves(0, integrateBatch)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var hash, index time.Duration
	for b.Loop() {
		err := st.View(context.Background(), func(r store.Reader) error {
			t0 := time.Now()
			if _, _, err := extend(r, treeState{}, leaves); err != nil {
				return err
			}
			t1 := time.Now()
			if _, err := indexBatch(r, 0, leaves); err != nil {
				return err
			}
			hash, index = hash+t1.Sub(t0), index+time.Since(t1)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N) * integrateBatch
	b.ReportMetric(float64(hash.Nanoseconds())/n, "hash-ns/leaf")
	b.ReportMetric(float64(index.Nanoseconds())/n, "index-ns/leaf")
	b.ReportMetric(float64(index)/float64(hash), "index/hash")
}

// BenchmarkIntegrateSQLite integrates 65,536 leaves on the SQLite backend
// with and without the leaf index, side by side, for leaves naming one of
// 100,000 patients (testEvent: nearly every leaf a new posting list) and
// one of a few (ixEvent): integrated leaves per second in each
// configuration and the ratio with/without.
func BenchmarkIntegrateSQLite(b *testing.B) {
	const n = 1 << 16
	for _, c := range []struct {
		name  string
		event func(int) *Event
	}{{"many-patients", testEvent}, {"few-patients", ixEvent}} {
		b.Run(c.name, func(b *testing.B) {
			var took [2]time.Duration
			for b.Loop() {
				for k, noIndex := range []bool{false, true} {
					st, err := sqlite.Open(b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < n; i += 4096 {
						if err := st.Update(context.Background(), func(w store.Writer) error {
							for j := i; j < i+4096; j++ {
								if _, err := w.AppendAudit(c.event(j).Leaf()); err != nil {
									return err
								}
							}
							return nil
						}); err != nil {
							b.Fatal(err)
						}
					}
					in := NewIntegrator(st)
					in.noIndex = noIndex
					t0 := time.Now()
					if tr, err := in.Integrate(context.Background()); err != nil || tr.Size != n {
						b.Fatalf("integrate: %v, size %d", err, tr.Size)
					}
					took[k] += time.Since(t0)
					st.Close()
				}
			}
			with, without := float64(b.N*n)/took[0].Seconds(), float64(b.N*n)/took[1].Seconds()
			b.ReportMetric(with, "leaves/s-indexed")
			b.ReportMetric(without, "leaves/s-unindexed")
			b.ReportMetric(with/without, "indexed/unindexed")
		})
	}
}
