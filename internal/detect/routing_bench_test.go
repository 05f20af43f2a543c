package detect

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkLiveAlertLoad compares the live detector's throughput when 1
// event in 100 raises or extends an alert with when every event raises a
// new alert (each a break-the-glass opening): the second pays, per event,
// for the sealed alert, its case and its outbox entry.
func BenchmarkLiveAlertLoad(b *testing.B) {
	const n = 5_000
	for _, every := range []int{100, 1} {
		b.Run(fmt.Sprintf("alert-every=%d", every), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				f := newLiveFixture(b, testDirectory)
				leaves := make([][]byte, n)
				for i := range leaves {
					ev := read(fmt.Sprintf("u%d", i%500), fmt.Sprintf("p%d", i%5000))
					if i%every == 0 {
						ev = breakGlass(fmt.Sprintf("u%d", i%500), f.now.Add(time.Hour))
					}
					ev.Outcome, ev.Allowed = "0", true
					if ev.Action == "" {
						ev.Action = "R"
					}
					ev.Time = f.now.Add(time.Duration(i) * 100 * time.Millisecond)
					leaves[i] = ev.Leaf()
				}
				if err := appendLeaves(f, leaves); err != nil {
					b.Fatal(err)
				}
				l := f.live(nil)
				b.StartTimer()
				if got, err := l.Step(context.Background()); err != nil || got != n {
					b.Fatalf("processed %d: %v", got, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// nopChannel takes every delivery.
type nopChannel struct{}

func (nopChannel) Deliver(context.Context, *Delivery) error { return nil }

// BenchmarkRouterDrain measures delivering 1,000 alerts from the outbox:
// to a channel that takes them at once (the router's own cost: reading
// the entry and the sealed alert, saving the cursor) and as webhook POSTs
// to a local HTTP server.
func BenchmarkRouterDrain(b *testing.B) {
	const n = 1_000
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		ch   Channel
	}{{"nop", nopChannel{}}, {"webhook", &Webhook{URL: srv.URL, Secret: []byte("k")}}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				f := newLiveFixture(b, "")
				r := NewRouter(RouterConfig{Alerts: f.alerts, Name: tc.name, Channel: tc.ch})
				if err := r.start(context.Background()); err != nil {
					b.Fatal(err)
				}
				leaves := make([][]byte, n)
				for i := range leaves {
					ev := breakGlass(fmt.Sprintf("u%d", i), f.now.Add(time.Hour))
					ev.Outcome, ev.Allowed, ev.Time = "0", true, f.now.Add(time.Duration(i)*time.Second)
					leaves[i] = ev.Leaf()
				}
				if err := appendLeaves(f, leaves); err != nil {
					b.Fatal(err)
				}
				if _, err := f.live(nil).Step(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := r.drain(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
