package fhirapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/policy/care"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/search"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// allowAll is the benchmark-only decision point without authorization: it
// allows everything and looks nothing up. It exists only in this file.
type allowAll struct{}

func (allowAll) Decide(context.Context, policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Policies: []string{"bench-allow-all"}}
}

// Sizes of the benchmark data set.
const (
	benchPatients = 100
	benchObsPer   = 30 // observations per patient
)

// readBench is one store served by two APIs: the full authorization stack
// (the Cedar engine with the default policies over care.Facts read from
// the data) and allowAll. Both share records, search and the audit log,
// so the only difference is the decision point.
type readBench struct {
	full, none http.Handler
	doctor     policy.Principal
}

// newBenchStore opens a store (newStack) and loads the benchmark data set:
// benchPatients patients with benchObsPer vital-sign Observations each and
// a CareTeam naming the practitioner dr1.
func newBenchStore(b testing.TB) (*sqlite.Backend, *records.Store, *search.Engine) {
	b.Helper()
	ctx := context.Background()
	db, rec, eng := newStack(b)
	var ops []records.Op
	add := func(typ, id string, m map[string]any) {
		ops = append(ops, records.Op{Type: typ, ID: id, Resource: m})
	}
	add("Practitioner", "dr1", map[string]any{"resourceType": "Practitioner", "id": "dr1", "name": []any{map[string]any{"family": "House"}}})
	for p := range benchPatients {
		pid := fmt.Sprintf("p%d", p)
		add("Patient", pid, map[string]any{"resourceType": "Patient", "id": pid,
			"name": []any{map[string]any{"family": fmt.Sprintf("Family%d", p), "given": []any{"Given"}}}, "birthDate": "1970-01-01"})
		ct := "ct" + pid
		add("CareTeam", ct, map[string]any{"resourceType": "CareTeam", "id": ct, "status": "active",
			"subject":     map[string]any{"reference": "Patient/" + pid},
			"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/dr1"}}}})
		for o := range benchObsPer {
			oid := fmt.Sprintf("o%d-%d", p, o)
			add("Observation", oid, map[string]any{"resourceType": "Observation", "id": oid, "status": "final",
				"category": []any{map[string]any{"coding": []any{map[string]any{
					"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
				"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
				"subject":           map[string]any{"reference": "Patient/" + pid},
				"effectiveDateTime": fmt.Sprintf("2024-01-%02dT08:00:00Z", o%28+1),
				"valueQuantity":     map[string]any{"value": 60 + o, "unit": "/min"}})
		}
	}
	if _, err := rec.Commit(ctx, ops, nil); err != nil {
		b.Fatal(err)
	}
	return db, rec, eng
}

func newReadBench(b testing.TB, factsOpts care.Options) *readBench {
	b.Helper()
	db, rec, eng := newBenchStore(b)
	engine, err := policy.NewEngine(policy.DefaultPolicies(), care.New(rec, eng, factsOpts))
	if err != nil {
		b.Fatal(err)
	}
	log := audit.NewLog(db, 5*time.Second)
	mk := func(d policy.Decider) http.Handler {
		return fhirapi.New(fhirapi.Config{Records: rec, Search: eng, Policy: d, Audit: log, Base: base, Version: "bench"}).Handler()
	}
	return &readBench{
		full: mk(engine),

		none: mk(allowAll{}),
		doctor: policy.Principal{UserID: "u-dr1", Roles: []string{"physician"}, Method: "password+totp",
			Practitioner: "dr1", MFA: true, Trained: true, AuthTime: time.Now(), SessionID: "s-dr1"},
	}
}

// workload is the read mix: for request i, one of GET Patient/{id},
// GET Observation/{id} and a patient-scoped search of 20 observations.
func workload(i int) string {
	p := (i / 3) % benchPatients
	switch i % 3 {
	case 0:
		return fmt.Sprintf("/fhir/Patient/p%d", p)
	case 1:
		return fmt.Sprintf("/fhir/Observation/o%d-%d", p, (i/3)%benchObsPer)
	default:
		return fmt.Sprintf("/fhir/Observation?patient=Patient/p%d&_count=20", p)
	}
}

// get sends one GET as who and returns the status.
func get(h http.Handler, who policy.Principal, path string) (int, string) {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r = r.WithContext(policy.WithPrincipal(r.Context(), who))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// serve sends one GET as who and fails the benchmark unless it is
// answered 200 (a denial would make the authorized run look cheap).
func serve(b *testing.B, h http.Handler, who policy.Principal, path string) {
	if code, body := get(h, who, path); code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, code, body)
	}
}

// TestReadBenchEnforces: the benchmark's authorized stack really decides
// from the data. The benchmark's physician is allowed the whole workload;
// a physician without a CareTeam, one without MFA and one without
// training are denied what the allow-all stack serves them.
func TestReadBenchEnforces(t *testing.T) {
	env := newReadBench(t, care.Options{})
	outsider := env.doctor
	outsider.UserID, outsider.Practitioner = "u-dr2", "dr2"
	noMFA := env.doctor
	noMFA.MFA = false
	untrained := env.doctor
	untrained.Trained = false
	for i := range 6 {
		path := workload(i)
		if code, body := get(env.full, env.doctor, path); code != http.StatusOK {
			t.Errorf("care-team physician: GET %s = %d %s", path, code, body)
		}
		for name, who := range map[string]policy.Principal{"no care relationship": outsider, "no MFA": noMFA, "untrained": untrained} {
			if code, _ := get(env.none, who, path); code != http.StatusOK {
				t.Errorf("%s, allow-all: GET %s = %d, want 200", name, path, code)
			}
			code, body := get(env.full, who, path)
			switch {
			case i%3 == 2 && code == http.StatusOK: // a search hides what the caller may not see
				var b struct {
					Entry []any `json:"entry"`
				}
				if err := json.Unmarshal([]byte(body), &b); err != nil || len(b.Entry) != 0 {
					t.Errorf("%s: GET %s returned %d entries (err %v), want none", name, path, len(b.Entry), err)
				}
			case i%3 != 2 && code != http.StatusForbidden:
				t.Errorf("%s: GET %s = %d, want 403", name, path, code)
			}
		}
	}
}

// BenchmarkReadAuthz runs the same FHIR read workload (reads of Patient
// and Observation, and a patient-scoped search returning 20 observations)
// through the full authorization stack and through an allow-all decision
// point, interleaved in one run so that both see the same machine state.
// It reports ns per request of each and ratio = throughput with
// authorization / throughput without (target >= 0.9).
//
//	go test -run '^$' -bench ReadAuthz -count 3 ./internal/fhirapi
//
// "cached" uses care.Facts as served (answers kept for 5 s); "uncached"
// looks every relationship and consent up in the store (TTL < 0), the
// cost of the first access to a patient in each 5-second window.
func BenchmarkReadAuthz(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts care.Options
	}{
		{"cached", care.Options{}},
		{"uncached", care.Options{TTL: -1}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := newReadBench(b, tc.opts)
			for _, sub := range []struct {
				name string
				kind int // -1: the mix; else workload(i) with i%3 == kind
			}{{"mix", -1}, {"patient-read", 0}, {"observation-read", 1}, {"observation-search", 2}} {
				b.Run(sub.name, func(b *testing.B) {
					next := func(i int) string {
						if sub.kind >= 0 {
							i = i*3 + sub.kind
						}
						return workload(i)
					}
					// Warm both paths (DEK cache, search, care facts).
					for i := range 3 * benchPatients {
						serve(b, env.full, env.doctor, next(i))
						serve(b, env.none, env.doctor, next(i))
					}
					var full, none time.Duration
					n := 0
					for b.Loop() {
						path := next(n)
						// Alternate which goes first, so neither always
						// finds the caches the other warmed.
						t0 := time.Now()
						if n%2 == 0 {
							serve(b, env.full, env.doctor, path)
							t1 := time.Now()
							serve(b, env.none, env.doctor, path)
							full, none = full+t1.Sub(t0), none+time.Since(t1)
						} else {
							serve(b, env.none, env.doctor, path)
							t1 := time.Now()
							serve(b, env.full, env.doctor, path)
							none, full = none+t1.Sub(t0), full+time.Since(t1)
						}
						n++
					}
					b.ReportMetric(float64(full.Nanoseconds())/float64(n), "authz-ns/req")
					b.ReportMetric(float64(none.Nanoseconds())/float64(n), "noauthz-ns/req")
					b.ReportMetric(float64(none)/float64(full), "ratio")
				})
			}
		})
	}
}
