package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// benchWrite is one benchmark write: a new resource with a ~1 KiB body, 10
// tokens and an audit leaf, like an audited FHIR create.
func benchWrite(w store.Writer, n int64) error {
	body := make([]byte, 1024)
	seed := sha256.Sum256(fmt.Appendf(nil, "%d", n))
	for i := 0; i < len(body); i += len(seed) {
		copy(body[i:], seed[:])
		seed = sha256.Sum256(seed[:])
	}
	tokens := make([]store.Token, 10)
	for k := range tokens {
		t := sha256.Sum256(fmt.Appendf(nil, "param%d=%d", k, n%int64(10*(k+1))))
		tokens[k] = t[:]
	}
	if _, err := w.Put(store.Version{Type: "Observation", ID: fmt.Sprintf("res-%09d", n), VID: 1, Updated: time.Now(), Body: body}, tokens); err != nil {
		return err
	}
	_, err := w.AppendAudit(seed[:])
	return err
}

// throughput performs total audited writes with the given number of
// goroutines and returns writes per second.
func throughput(b *testing.B, be store.Backend, writers, total int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(total) {
					return
				}
				if err := be.Update(context.Background(), func(w store.Writer) error { return benchWrite(w, n) }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkUpdate measures audited-write throughput with group commit on
// PostgreSQL (one node) and, in the same run, on the embedded SQLite store,
// and reports both and their ratio (pg/sqlite).
func BenchmarkUpdate(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			pg := open(b, pgtest.DSN(b))
			defer pg.Close()
			lite, err := sqlite.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer lite.Close()
			b.ResetTimer()
			pgRate := throughput(b, pg, writers, b.N)
			liteRate := throughput(b, lite, writers, b.N)
			b.StopTimer()
			st := pg.Stats()
			b.ReportMetric(pgRate, "pg-writes/s")
			b.ReportMetric(liteRate, "sqlite-writes/s")
			b.ReportMetric(pgRate/liteRate, "pg/sqlite")
			b.ReportMetric(float64(st.Updates)/float64(max(st.Commits, 1)), "pg-writes/commit")
		})
	}
}
