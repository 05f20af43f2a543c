package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// benchRequests are typical decisions, with in-memory facts (so the
// figures are the engine's own cost, not the store's).
func benchRequests() (map[string]Request, *memFacts) {
	f := &memFacts{
		rels:     map[[2]string][]string{{"pr-physician", "p1"}: {"careteam"}},
		consents: map[string][]Consent{"p1": {{ID: "c1", Permit: true, Purpose: []string{"HRESCH"}}, {ID: "c2", Labels: []string{"HIV"}}}},
	}
	bg := with(who("nurse"), func(p *Principal) { p.BreakGlass = &BreakGlass{Reason: "r", Until: t0.Add(time.Hour)} })
	app := Principal{UserID: "pat", Roles: []string{"patient"}, Patient: "p1", Method: "smart",
		Scopes: []string{"openid", "fhirUser", "launch/patient", "patient/Observation.rs?category=laboratory", "patient/Patient.rs"}}
	return map[string]Request{
		"physician-read":   {Principal: who("physician"), Action: Read, Type: "Observation", ID: "o1", Patient: "p1", Purpose: "TREAT", Category: []string{"laboratory"}},
		"physician-denied": {Principal: who("physician"), Action: Read, Type: "Observation", ID: "o1", Patient: "p2", Purpose: "TREAT"},
		"front-desk":       {Principal: who("front-desk"), Action: Update, Type: "Patient", ID: "p1", Purpose: "TREAT"},
		"smart-patient":    {Principal: app, Action: Read, Type: "Observation", ID: "o1", Patient: "p1", Category: []string{"laboratory"}},
		"break-glass":      {Principal: bg, Action: Read, Type: "Condition", ID: "c1", Patient: "p1", Purpose: "ETREAT"},
		"reference":        {Principal: who("nurse"), Action: Search, Type: "Practitioner"},
	}, f
}

// BenchmarkDecide measures one decision for each typical request.
func BenchmarkDecide(b *testing.B) {
	reqs, f := benchRequests()
	e := newTestEngine(b, f)
	ctx := context.Background()
	names := make([]string, 0, len(reqs))
	for n := range reqs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		r := reqs[n]
		b.Run(n, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(ctx, r)
			}
		})
	}
}

// BenchmarkDecideLatency times every decision of a round-robin mix of the
// typical requests and reports the 50th and 99th percentiles of a single
// decision. Run it over ~100k decisions:
//
//	go test -run '^$' -bench DecideLatency -benchtime 100000x ./internal/policy
//
// Target: p99 <= 50 microseconds.
func BenchmarkDecideLatency(b *testing.B) {
	reqs, f := benchRequests()
	e := newTestEngine(b, f)
	ctx := context.Background()
	mix := make([]Request, 0, len(reqs))
	for _, r := range reqs {
		mix = append(mix, r)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		e.Decide(ctx, mix[i%len(mix)])
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
