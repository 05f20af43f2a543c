package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

// countingKEK counts the calls that reach the KEK provider (a key file
// here; an HSM or a KMS round trip in production).
type countingKEK struct {
	rotatingKEK
	calls atomic.Int64
}

func (k *countingKEK) Wrap(ctx context.Context, dek []byte) (barrier.Wrapped, error) {
	k.calls.Add(1)
	return k.rotatingKEK.Wrap(ctx, dek)
}

func (k *countingKEK) Unwrap(ctx context.Context, w barrier.Wrapped) ([]byte, error) {
	k.calls.Add(1)
	return k.rotatingKEK.Unwrap(ctx, w)
}

// benchEnv reads a positive integer from the environment, or def.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkKeysRotateUnderLoad runs the same read+write load through the
// FHIR API (parse, policy decision, audit record, records, barrier) for a
// while before a KEK rotation, then again while 'keys rotate' rewraps
// every data key, and reports throughput during the rotation as a ratio
// of the same load without one (median of the -benchtime=Nx rounds, each
// measured back to back), the failed requests (must be 0) and the calls that reached
// the KEK provider per 1,000 requests in each phase. Run it with
// -benchtime=1x; PHIVAULT_BENCH_KEYS sets the number of patient
// compartments (data keys, default 8000, within the 10,000 keys the cache holds), PHIVAULT_BENCH_WORKERS the
// concurrent clients (default 8).
func BenchmarkKeysRotateUnderLoad(b *testing.B) {
	patients := benchEnv("PHIVAULT_BENCH_KEYS", 8000)
	workers := benchEnv("PHIVAULT_BENCH_WORKERS", 8)
	ctx := context.Background()
	dir := b.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		b.Fatal(err)
	}
	n, err := lockNode(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer n.close()
	raw, err := openKEK(dir, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	kek := &countingKEK{rotatingKEK: raw.(rotatingKEK)}
	if err := n.open(ctx, kek); err != nil {
		b.Fatal(err)
	}
	n.kek = raw // keys rotate adds versions to the file; the barrier calls it through the counter
	api := n.api("http://phivault/fhir")
	defer api.Close()
	l := &rotLoad{c: server.InProcess(api.Handler(), policy.Principal{UserID: "bench", Roles: []string{authn.OperatorRole}, Method: "local-cli"}),
		base: "http://phivault/fhir", seeded: patients}
	for from := 0; from < patients; from += 500 {
		l.do("POST", "", seedBundle(from, min(from+500, patients)), 200)
	}
	for w := range workers { // the workers' own patients exist too: steady state makes no new keys
		for i := range 40 {
			body := fmt.Appendf(nil, `{"resourceType":"Patient","id":"w%d-%d"}`, w, i)
			l.do("PUT", fmt.Sprintf("Patient/w%d-%d", w, i), body, 200, 201)
		}
	}
	if l.failed.Load() != 0 {
		b.Fatalf("seeding failed: %s", l.failures())
	}
	phase := func(d time.Duration, during func()) (ok, failed, calls int64, took time.Duration) {
		ok0, f0, c0 := l.ok.Load(), l.failed.Load(), kek.calls.Load()
		stop := make(chan struct{})
		start := time.Now()
		wait := l.start(workers, stop)
		if during != nil {
			during()
		} else {
			time.Sleep(d)
		}
		took = time.Since(start)
		close(stop)
		wait()
		return l.ok.Load() - ok0, l.failed.Load() - f0, kek.calls.Load() - c0, took
	}
	phase(time.Second, nil) // warm-up
	var ratios []float64
	var failed, callsBefore, callsDuring, rotSecs, rewrapped float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var rotErr error
		var rot time.Duration
		okD, failD, callsD, tookD := phase(0, func() {
			start := time.Now()
			var u0 map[string]int
			u0, rotErr = n.barrier.KEKUsage(ctx)
			_, rotErr = n.keysOp(ctx, "rotate", 0, "bench")
			rot = time.Since(start)
			for k, c := range u0 {
				if k != "destroyed" {
					rewrapped += float64(c)
				}
			}
		})
		if rotErr != nil {
			b.Fatal(rotErr)
		}
		okB, failB, callsB, tookB := phase(tookD, nil) // the same load, as long, without a rotation
		ratios = append(ratios, (float64(okD)/tookD.Seconds())/(float64(okB)/tookB.Seconds()))
		failed += float64(failD + failB)
		callsBefore += float64(callsB) * 1000 / float64(max(okB+failB, 1))
		callsDuring += float64(callsD) * 1000 / float64(max(okD+failD, 1))
		rotSecs += rot.Seconds()
		b.Logf("rotation %d: %d data keys rewrapped in %s; %d requests during (%.0f/s), %d without (%.0f/s)",
			i+1, int(rewrapped)/(i+1), rot.Round(time.Millisecond), okD, float64(okD)/tookD.Seconds(), okB, float64(okB)/tookB.Seconds())
	}
	b.StopTimer()
	if failed != 0 {
		b.Errorf("%v requests failed: %s", failed, l.failures())
	}
	N := float64(b.N)
	slices.Sort(ratios) // the median: a shared machine's load comes and goes between phases
	b.ReportMetric(ratios[len(ratios)/2], "during/steady-throughput")
	b.ReportMetric(ratios[0], "ratio-min")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
	b.ReportMetric(failed, "failed-requests")
	b.ReportMetric(callsBefore/N, "provider-calls/1000req-steady")
	b.ReportMetric(callsDuring/N, "provider-calls/1000req-rotating")
	b.ReportMetric(rotSecs/N, "rotation-s")
	b.ReportMetric(rewrapped/N, "data-keys")
}
