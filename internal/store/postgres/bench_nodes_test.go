package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// clusterThroughput performs total audited writes from clients spread
// evenly over nodes (each its own Backend, as separate phivault processes
// would have) and returns writes per second and writes per group commit.
func clusterThroughput(b *testing.B, nodes []*postgres.Backend, clients, total int) (rate, perCommit float64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		be := nodes[c%len(nodes)]
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
	rate = float64(total) / time.Since(start).Seconds()
	var commits, updates int64
	for _, n := range nodes {
		st := n.Stats()
		commits, updates = commits+st.Commits, updates+st.Updates
	}
	return rate, float64(updates) / float64(max(commits, 1))
}

// BenchmarkNodes measures audited-write throughput of one, two and three
// nodes on one PostgreSQL database, in one run, with the same number of
// concurrent clients spread over the nodes. Every node's group transaction
// takes the cluster-wide audit head lock, so the figure shows what more
// nodes add to (or take from) the database's write rate; it reports each
// rate, the ratios to one node and the writes per group commit.
func BenchmarkNodes(b *testing.B) {
	for _, clients := range []int{6, 48} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var rates [4]float64
			b.ResetTimer()
			for k := 1; k <= 3; k++ {
				b.StopTimer()
				dsn := pgtest.DSN(b)
				nodes := make([]*postgres.Backend, k)
				for i := range nodes {
					nodes[i] = open(b, dsn, postgres.WithReaders(2))
				}
				b.StartTimer()
				var per float64
				rates[k], per = clusterThroughput(b, nodes, clients, b.N)
				b.StopTimer()
				for _, n := range nodes {
					n.Close()
				}
				b.ReportMetric(rates[k], fmt.Sprintf("writes/s-%dnode", k))
				b.ReportMetric(per, fmt.Sprintf("writes/commit-%dnode", k))
			}
			b.ReportMetric(rates[2]/rates[1], "2node/1node")
			b.ReportMetric(rates[3]/rates[1], "3node/1node")
		})
	}
}
