package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// memoRequests is a broad range of requests: every role, action and kind
// of target, with and without care relationship, consent, labels, scopes,
// break-the-glass and second factor, and several ids of the same kind.
func memoRequests() []Request {
	roles := []string{"physician", "nurse", "front-desk", "billing", "researcher", "privacy-officer",
		"security-officer", "administrator", "auditor", "patient", "device", "vendor", "operator"}
	targets := []struct{ typ, id, patient string }{
		{"Observation", "o1", "p1"}, {"Observation", "o2", "p1"}, {"Observation", "o3", "p2"},
		{"Observation", "", ""}, {"Patient", "p1", ""}, {"Patient", "p2", ""}, {"Coverage", "cv1", "p1"},
		{"Practitioner", "pr1", ""}, {"AuditEvent", "", ""}, {"", "", ""},
	}
	actions := []Action{Read, Search, Create, Update, Delete, Export, Admin, AuditRead}
	var out []Request
	for i, role := range roles {
		for j, tg := range targets {
			for k, a := range actions {
				for v := range 8 {
					p := with(who(role), func(p *Principal) {
						p.MFA = v&1 == 0
						if role == "patient" {
							p.Patient = "p1"
						}
						if v&2 != 0 {
							p.BreakGlass = &BreakGlass{Reason: "r", Until: t0.Add(time.Hour)}
						}
						if v&4 != 0 {
							p.Method, p.Scopes = "smart", []string{"patient/Observation.rs"}
						}
						if (i+k)%5 == 0 {
							p.Method = "operator-token"
						}
					})
					r := Request{Principal: p, Action: a, Type: tg.typ, ID: tg.id, Patient: tg.patient,
						Purpose: []string{"TREAT", "payment", "research", "ETREAT"}[(j+v)%4]}
					if v%3 == 0 {
						r.Labels = []string{"R"}
					}
					if v%2 == 1 {
						r.Category = []string{"laboratory"}
					}
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func memoFacts() *memFacts {
	return &memFacts{
		rels: map[[2]string][]string{{"pr-physician", "p1"}: {"careteam"}, {"pr-nurse", "p2"}: {"encounter"}},
		consents: map[string][]Consent{
			"p1": {{ID: "c1", Permit: true, Purpose: []string{"HRESCH"}}},
			"p2": {{ID: "c2", Labels: []string{"laboratory"}}, {ID: "c3", Actors: []string{"Practitioner/pr-nurse"}}},
		},
	}
}

// TestMemoGivesTheSameDecisions: a memoised engine decides every request
// exactly as one that evaluates every request afresh, on the first and on
// a repeated asking, whatever was asked before.
func TestMemoGivesTheSameDecisions(t *testing.T) {
	f := memoFacts()
	memo := newTestEngine(t, f)
	if memo.set.Load().memo == nil {
		t.Fatal("the default policy set is not memoised; it names no entity by id")
	}
	fresh := newTestEngine(t, f)
	fresh.set.Load().memo = nil
	ctx := context.Background()
	reqs := memoRequests()
	for pass := range 2 {
		for _, r := range reqs {
			want := fresh.Decide(ctx, r)
			got := memo.Decide(ctx, r)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("pass %d: %+v: memoised decision differs (-fresh +memo):\n%s", pass, r, diff)
			}
		}
	}
	hits := len(memo.set.Load().memo.m)
	if hits == 0 || hits >= len(reqs) {
		t.Errorf("memo holds %d outcomes for %d requests; want some sharing", hits, len(reqs))
	}
}

// TestMemoDecisionNotShared: a caller that extends the Policies of a
// decision (as Decide does with consent ids) does not change a later one.
func TestMemoDecisionNotShared(t *testing.T) {
	e := newTestEngine(t, memoFacts())
	r := Request{Principal: who("physician"), Action: Read, Type: "Observation", ID: "o1", Patient: "p1", Purpose: "TREAT"}
	e.Decide(context.Background(), r) // evaluated and memoised
	d1 := e.Decide(context.Background(), r)
	d1.Policies[0] = "changed"
	_ = append(d1.Policies, "more")
	d2 := e.Decide(context.Background(), r)
	if diff := cmp.Diff([]string{"clinical-care"}, d2.Policies); diff != "" || !d2.Allow {
		t.Errorf("second decision allow=%v policies (-want +got):\n%s", d2.Allow, diff)
	}
}

// TestMemoOffWhenIDsMatter: a set that names a user or a resource by id
// is evaluated for every request, so one caller's or resource's outcome
// is never given to another.
func TestMemoOffWhenIDsMatter(t *testing.T) {
	tests := []struct {
		name, src string
		allowed   Request
		denied    Request
	}{
		{"principal scope", `@id("u1") permit (principal == User::"u1", action, resource);`,
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "Location", ID: "l1"},
			Request{Principal: Principal{UserID: "u2", Roles: []string{"nurse"}}, Action: Read, Type: "Location", ID: "l1"}},
		{"resource in condition", `@id("l1") permit (principal, action, resource) when { resource == Location::"l1" };`,
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "Location", ID: "l1"},
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "Location", ID: "l2"}},
		{"entity in a set", `@id("set") permit (principal, action, resource) when { [User::"u1"].contains(principal) };`,
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "Location", ID: "l1"},
			Request{Principal: Principal{UserID: "u2", Roles: []string{"nurse"}}, Action: Read, Type: "Location", ID: "l1"}},
		// No literal, but caller and target compared: targets of the
		// types User and Role are never memoised.
		{"caller in target", `@id("self") permit (principal, action, resource) when { principal in resource };`,
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "Role", ID: "nurse"},
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "Role", ID: "physician"}},
		{"caller is target", `@id("self") permit (principal, action, resource) when { principal == resource };`,
			Request{Principal: Principal{UserID: "u1", Roles: []string{"nurse"}}, Action: Read, Type: "User", ID: "u1"},
			Request{Principal: Principal{UserID: "u2", Roles: []string{"nurse"}}, Action: Read, Type: "User", ID: "u1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine([]byte(tc.src), memoFacts())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i := range 2 {
				if d := e.Decide(ctx, tc.allowed); !d.Allow {
					t.Errorf("round %d: allowed request denied: %+v", i, d)
				}
				if d := e.Decide(ctx, tc.denied); d.Allow {
					t.Errorf("round %d: request of another id allowed: %+v", i, d)
				}
			}
		})
	}
}

// TestMemoForgottenOnReplace: a replaced policy set decides from its own
// policies at once, not from outcomes of the set before.
func TestMemoForgottenOnReplace(t *testing.T) {
	e := newTestEngine(t, memoFacts())
	r := Request{Principal: who("physician"), Action: Read, Type: "Observation", ID: "o1", Patient: "p1", Purpose: "TREAT"}
	if d := e.Decide(context.Background(), r); !d.Allow {
		t.Fatalf("default set denies a physician in the care team: %+v", d)
	}
	if err := e.Replace([]byte(`@id("reference-only") permit (principal, action, resource) when { resource.kind == "reference" };`)); err != nil {
		t.Fatal(err)
	}
	if d := e.Decide(context.Background(), r); d.Allow {
		t.Fatalf("after Replace the old outcome was used: %+v", d)
	}
}

// TestMemoBounded: caller-chosen strings (purposes here) cannot grow the
// memo past its bound, and decisions stay right past it.
func TestMemoBounded(t *testing.T) {
	e := newTestEngine(t, memoFacts())
	ctx := context.Background()
	for i := range maxCached + 100 {
		r := Request{Principal: who("physician"), Action: Read, Type: "Observation", ID: "o1", Patient: "p1", Purpose: fmt.Sprint("X", i)}
		if d := e.Decide(ctx, r); d.Allow {
			t.Fatalf("purpose %q allowed", r.Purpose)
		}
	}
	if n := len(e.set.Load().memo.m); n > maxCached {
		t.Errorf("memo holds %d outcomes; bound %d", n, maxCached)
	}
	r := Request{Principal: who("physician"), Action: Read, Type: "Observation", ID: "o1", Patient: "p1", Purpose: "TREAT"}
	if d := e.Decide(ctx, r); !d.Allow {
		t.Errorf("past the bound a treatment read is denied: %+v", d)
	}
}

// BenchmarkDecideLatencyFresh is BenchmarkDecideLatency with every
// decision evaluated afresh (no memo): the latency of a combination of
// inputs seen for the first time, or of a policy set that names entities
// by id.
//
//	go test -run '^$' -bench DecideLatencyFresh -benchtime 100000x ./internal/policy
func BenchmarkDecideLatencyFresh(b *testing.B) {
	reqs, f := benchRequests()
	e := newTestEngine(b, f)
	e.set.Load().memo = nil
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
