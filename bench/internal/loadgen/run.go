// Package loadgen is the measuring core shared by phivault's benchmark
// programs (bench/load against the server, bench/sqlitebase against SQLite
// directly): N concurrent clients run one operation in a loop, bounded by
// time and by count, and every latency is kept so percentiles are exact.
// Running both targets through the same loop is what makes their ratio
// meaningful.
package loadgen

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Op performs one operation for client c (0 <= c < clients); seq counts
// that client's operations from 0. It returns how many items (resources)
// the operation carried, for workloads that move several per request. An
// Op must be safe to call from many goroutines at once.
type Op func(ctx context.Context, c, seq int) (items int, err error)

// Limits bound one measurement.
type Limits struct {
	Clients  int
	Duration time.Duration // stop after this long
	MaxOps   int64         // and after this many operations in total (0: no count limit)
	Warmup   time.Duration // run (unmeasured) for this long first
	// ServerPID, when set, is the server process whose CPU use is measured.
	ServerPID int
}

// Run runs op with l.Clients concurrent clients and measures it. Clients
// stop starting operations when l.Duration has passed (or l.MaxOps were
// started); operations in flight then complete and count, and throughput
// is over the time until the last one ended, so slow operations (a large
// transaction) are neither lost nor cut off half-way. Errors never stop
// the run: they are counted and the first one is kept.
func Run(ctx context.Context, l Limits, op Op) Result {
	if l.Clients < 1 {
		l.Clients = 1
	}
	if l.Warmup > 0 {
		run(ctx, l.Clients, time.Now().Add(l.Warmup), 0, op)
	}
	cpu0, srv0 := selfCPU(), ProcCPU(l.ServerPID)
	start := time.Now()
	lat, items, errs, first := run(ctx, l.Clients, start.Add(l.Duration), l.MaxOps, op)
	wall := time.Since(start)
	cpu, srv := selfCPU()-cpu0, ProcCPU(l.ServerPID)-srv0
	r := summarize(lat, wall)
	r.Clients = l.Clients
	r.Items = items
	r.ItemsPerSec = float64(items) / wall.Seconds()
	r.Errors = errs
	r.FirstError = first
	r.ToolCPUPct = 100 * cpu.Seconds() / wall.Seconds()
	r.ServerCPUPct = 100 * srv.Seconds() / wall.Seconds()
	return r
}

// run returns the latencies of successful operations, items moved, the
// error count and the first error text.
func run(ctx context.Context, clients int, deadline time.Time, maxOps int64, op Op) ([]time.Duration, int64, int64, string) {
	var (
		wg     sync.WaitGroup
		issued atomic.Int64
		items  atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		first  string
		all    = make([][]time.Duration, clients)
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for seq := 0; ctx.Err() == nil && time.Now().Before(deadline); seq++ {
				if maxOps > 0 && issued.Add(1) > maxOps {
					break
				}
				t0 := time.Now()
				n, err := op(ctx, c, seq)
				d := time.Since(t0)
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if first == "" {
						first = err.Error()
					}
					mu.Unlock()
					continue
				}
				items.Add(int64(n))
				lat = append(lat, d)
			}
			all[c] = lat
		}()
	}
	wg.Wait()
	var n int
	for _, l := range all {
		n += len(l)
	}
	merged := make([]time.Duration, 0, n)
	for _, l := range all {
		merged = append(merged, l...)
	}
	return merged, items.Load(), errs.Load(), first
}

func summarize(lat []time.Duration, wall time.Duration) Result {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := Result{Ops: int64(len(lat)), Seconds: wall.Seconds()}
	r.OpsPerSec = float64(len(lat)) / wall.Seconds()
	if len(lat) > 0 {
		r.P50ms = ms(quantile(lat, 0.50))
		r.P90ms = ms(quantile(lat, 0.90))
		r.P99ms = ms(quantile(lat, 0.99))
		r.MaxMs = ms(lat[len(lat)-1])
	}
	return r
}

// quantile is the nearest-rank quantile of sorted samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// selfCPU is the user+system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
