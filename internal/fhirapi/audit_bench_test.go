package fhirapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/policy/care"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// discardAudit is the benchmark-only audit sink: a store whose Update runs
// fn against a writer that accepts audit leaves and drops them, at once.
// It exists only in this file, so nothing in the product can turn audit
// off. Log.Record still builds and encodes each event and batches it: the
// difference between the configurations is the durable append (the wait
// for the group commit, the INSERT, the fsync), not the event itself.
type discardAudit struct{}

var errDiscardOnly = errors.New("discardAudit: audit appends only")

func (discardAudit) View(context.Context, func(store.Reader) error) error { return errDiscardOnly }
func (discardAudit) Update(_ context.Context, fn func(store.Writer) error) error {
	return fn(discardWriter{})
}
func (discardAudit) Close() error { return nil }

// discardWriter implements only AppendAudit, the one method Log uses; the
// embedded nil Writer makes any other call panic loudly.
type discardWriter struct{ store.Writer }

func (discardWriter) AppendAudit([]byte) (int64, error) { return 0, nil }

// auditBench serves one SQLite store through two APIs that share records,
// search and the authorization engine and differ only in their audit log:
// the real one, appending durably to the same store, and discardAudit.
type auditBench struct {
	on, off http.Handler
	db      *sqlite.Backend
	doctor  policy.Principal
}

// newAuditBench loads the data set of the authorization benchmark (100
// patients, 30 Observations each, a CareTeam per patient naming the
// practitioner) and builds both APIs with the default policies.
func newAuditBench(b testing.TB) *auditBench {
	b.Helper()
	db, rec, eng := newBenchStore(b)
	engine, err := policy.NewEngine(policy.DefaultPolicies(), care.New(rec, eng, care.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	mk := func(l *audit.Log) http.Handler {
		return fhirapi.New(fhirapi.Config{Records: rec, Search: eng, Policy: engine, Audit: l, Base: base, Version: "bench"}).Handler()
	}
	return &auditBench{
		on:  mk(audit.NewLog(db, 5*time.Second)),
		off: mk(audit.NewLog(discardAudit{}, 5*time.Second)),
		db:  db,
		doctor: policy.Principal{UserID: "u-dr1", Roles: []string{"physician"}, Method: "password+totp",
			Practitioner: "dr1", MFA: true, Trained: true, AuthTime: time.Now(), SessionID: "s-dr1"},
	}
}

// auditSize reads the store's audit log size.
func (e *auditBench) auditSize(t testing.TB) (n int64) {
	t.Helper()
	if err := e.db.View(context.Background(), func(r store.Reader) (err error) {
		n, err = r.AuditSize()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReadAuditBenchConfigurations: the benchmark's audited API appends
// one durable event per read to the store; the other appends none, and
// both answer the whole workload.
func TestReadAuditBenchConfigurations(t *testing.T) {
	env := newAuditBench(t)
	const n = 30
	before := env.auditSize(t)
	for i := range n {
		if code, body := get(env.on, env.doctor, workload(i)); code != http.StatusOK {
			t.Fatalf("audited: GET %s = %d %s", workload(i), code, body)
		}
	}
	mid := env.auditSize(t)
	for i := range n {
		if code, body := get(env.off, env.doctor, workload(i)); code != http.StatusOK {
			t.Fatalf("discarding: GET %s = %d %s", workload(i), code, body)
		}
	}
	if after := env.auditSize(t); mid-before != n || after != mid {
		t.Fatalf("audited reads appended %d events (want %d), discarding reads %d (want 0)", mid-before, n, after-mid)
	}
}

// runClients sends total requests of the read mix from clients goroutines
// through h and returns each request's latency.
func runClients(b *testing.B, h http.Handler, who policy.Principal, clients, total int, offset *atomic.Int64) []time.Duration {
	lat := make([]time.Duration, total)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= total {
					return
				}
				path := workload(int(offset.Add(1)))
				t0 := time.Now()
				if code, body := get(h, who, path); code != http.StatusOK {
					b.Errorf("GET %s: %d %s", path, code, body)
					return
				}
				lat[k] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return lat
}

// BenchmarkReadAudit serves the FHIR read mix of BenchmarkReadAuthz
// (Patient reads, Observation reads, patient-scoped searches of 20
// Observations; full authorization) from concurrent clients, once with
// the real audit log (every read waits for its event to be durable in
// the same SQLite store, synchronous=FULL) and once with the discarding
// sink. Each b.Loop iteration is one round of 1,000 requests per
// configuration, the two alternating which goes first, so both see the
// same machine. It reports reads/s and p99 of each, the
// throughput ratio on/off (target >= 0.8) and the p99 added by audit
// (target <= 3 ms).
//
//	go test -run '^$' -bench ReadAudit -benchtime 5x -count 3 ./internal/fhirapi
func BenchmarkReadAudit(b *testing.B) {
	env := newAuditBench(b)
	for _, clients := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			const perRound = 1000
			var offset atomic.Int64
			// Warm both paths (DEK cache, search, care facts).
			runClients(b, env.on, env.doctor, clients, 3*benchPatients, &offset)
			runClients(b, env.off, env.doctor, clients, 3*benchPatients, &offset)
			var on, off []time.Duration
			var onTime, offTime time.Duration
			round := 0
			for b.Loop() {
				for k := range 2 {
					audited := (round+k)%2 == 0
					h := env.off
					if audited {
						h = env.on
					}
					t0 := time.Now()
					lat := runClients(b, h, env.doctor, clients, perRound, &offset)
					el := time.Since(t0)
					if audited {
						on, onTime = append(on, lat...), onTime+el
					} else {
						off, offTime = append(off, lat...), offTime+el
					}
				}
				round++
			}
			onRate := float64(len(on)) / onTime.Seconds()
			offRate := float64(len(off)) / offTime.Seconds()
			onP99, offP99 := quantile(on, 0.99), quantile(off, 0.99)
			b.ReportMetric(onRate, "on-reads/s")
			b.ReportMetric(offRate, "off-reads/s")
			b.ReportMetric(onRate/offRate, "ratio")
			b.ReportMetric(ms(quantile(on, 0.5)), "on-p50-ms")
			b.ReportMetric(ms(onP99), "on-p99-ms")
			b.ReportMetric(ms(offP99), "off-p99-ms")
			b.ReportMetric(ms(onP99-offP99), "p99-added-ms")
		})
	}
}

// openLoop sends total requests of the read mix through h at a fixed
// rate (requests per second), whatever the answers' pace, from a pool of
// workers, and returns each request's latency counted from the moment it
// was due, so time spent queued for a free worker counts too.
func openLoop(b *testing.B, h http.Handler, who policy.Principal, rate float64, total int, offset *atomic.Int64) []time.Duration {
	type job struct {
		path string
		due  time.Time
	}
	jobs := make(chan job, total)
	lat := make([]time.Duration, 0, total)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for j := range jobs {
				if code, body := get(h, who, j.path); code != http.StatusOK {
					b.Errorf("GET %s: %d %s", j.path, code, body)
				}
				d := time.Since(j.due)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for k := range total {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		jobs <- job{workload(int(offset.Add(1))), due}
	}
	close(jobs)
	wg.Wait()
	return lat
}

// BenchmarkReadAuditLatency compares the latency of the read mix with the
// real audit log and with the discarding sink at the same offered load
// (open loop, fixed rates well below either configuration's capacity on
// this machine), so that queueing for the CPU does not hide or inflate
// what audit adds. Each b.Loop iteration is one round of 1,000 requests
// per configuration, alternating which goes first.
//
//	go test -run '^$' -bench ReadAuditLatency -benchtime 3x -count 2 ./internal/fhirapi
func BenchmarkReadAuditLatency(b *testing.B) {
	env := newAuditBench(b)
	for _, rate := range []float64{100, 300} {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) {
			const perRound = 1000
			var offset atomic.Int64
			runClients(b, env.on, env.doctor, 4, 3*benchPatients, &offset)
			runClients(b, env.off, env.doctor, 4, 3*benchPatients, &offset)
			var on, off []time.Duration
			round := 0
			for b.Loop() {
				for k := range 2 {
					if (round+k)%2 == 0 {
						on = append(on, openLoop(b, env.on, env.doctor, rate, perRound, &offset)...)
					} else {
						off = append(off, openLoop(b, env.off, env.doctor, rate, perRound, &offset)...)
					}
				}
				round++
			}
			onP50, offP50 := quantile(on, 0.5), quantile(off, 0.5)
			onP99, offP99 := quantile(on, 0.99), quantile(off, 0.99)
			b.ReportMetric(ms(onP50), "on-p50-ms")
			b.ReportMetric(ms(offP50), "off-p50-ms")
			b.ReportMetric(ms(onP99), "on-p99-ms")
			b.ReportMetric(ms(offP99), "off-p99-ms")
			b.ReportMetric(ms(onP50-offP50), "p50-added-ms")
			b.ReportMetric(ms(onP99-offP99), "p99-added-ms")
		})
	}
}

// quantile returns the q-quantile of d (nearest rank); it sorts d.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
