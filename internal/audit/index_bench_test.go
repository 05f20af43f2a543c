package audit

import (
	"context"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
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
