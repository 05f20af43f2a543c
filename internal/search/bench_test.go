package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// BenchmarkPatientLabs is the patient-scoped search of the issue over a
// population shaped like Synthea's (many lab results per patient).
func BenchmarkPatientLabs(b *testing.B) {
	labQueries(b, labEnv(b))
}

func labEnv(b *testing.B) *env {
	e := newEnv(b)
	const patients = 20
	r := rand.New(rand.NewPCG(1, 1))
	var data []map[string]any
	const perPatient = 300
	for p := range patients {
		data = append(data, map[string]any{"resourceType": "Patient", "id": fmt.Sprintf("p%d", p)})
		for i := range perPatient {
			t := time.Date(2000+r.IntN(25), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), 0, 0, 0, time.UTC)
			cat := "laboratory"
			if i%4 == 0 {
				cat = "vital-signs"
			}
			data = append(data, map[string]any{"resourceType": "Observation", "id": fmt.Sprintf("o%d-%d", p, i), "status": "final",
				"category":          []any{map[string]any{"coding": []any{map[string]any{"system": catSys, "code": cat}}}},
				"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}}},
				"subject":           map[string]any{"reference": fmt.Sprintf("Patient/p%d", p)},
				"effectiveDateTime": t.Format(time.RFC3339),
				"valueQuantity":     map[string]any{"value": r.IntN(300), "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}})
		}
	}
	e.load(data...)
	return e
}

func labQueries(b *testing.B, e *env) {
	const patients = 20
	for _, q := range []string{"Observation?patient=p%d&category=laboratory&_sort=-date&_count=20", "Observation?patient=p%d&category=laboratory&_count=20"} {
		b.Run(q, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					req := httptest.NewRequest("GET", "/fhir/"+fmt.Sprintf(q, i%patients), nil)
					req = req.WithContext(policy.WithPrincipal(req.Context(), admin))
					w := httptest.NewRecorder()
					e.h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatal(w.Code, w.Body.String())
					}
				}
			})
		})
	}
}

// labQuery is the patient-scoped search of labEnv's patient i (mod 20):
// its lab results, newest first, a page of 20.
func labQuery(i int) url.Values {
	return url.Values{"patient": {fmt.Sprintf("p%d", i%20)}, "category": {"laboratory"}, "_sort": {"-date"}, "_count": {"20"}}
}

func BenchmarkEngineOnly(b *testing.B) {
	e := labEnv(b)
	q := labQuery(3)
	for b.Loop() {
		if _, err := e.eng.Search(context.Background(), fhirapi.SearchRequest{Type: "Observation", Query: q}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDateSortWalk compares, in one run, the patient-scoped sorted
// search answered by the year walk (walk.go) with the same page computed
// by the full scan that decrypts every candidate (taken when
// _total=accurate asks for every match to be decided), for a page of 20
// of the 225 candidates and for a page that holds them all (which the walk
// reads without asking for their years).
func BenchmarkDateSortWalk(b *testing.B) {
	e := labEnv(b)
	for _, mode := range []string{"walk", "full", "walk/page-holds-all", "full/page-holds-all"} {
		b.Run(mode, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				q := labQuery(i)
				if strings.HasSuffix(mode, "/page-holds-all") {
					q.Set("_count", "1000")
				}
				if strings.HasPrefix(mode, "full") {
					q.Set("_total", "accurate")
				}
				if _, err := e.eng.Search(context.Background(), fhirapi.SearchRequest{Type: "Observation", Query: q}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkColdPages measures what a commit costs the searches after it:
// SQLite drops a reader's page cache at its next read transaction after
// any commit, and an audited server commits (its audit leaves) between
// nearly every two searches. "warm" runs the patient-scoped search back
// to back; "cold" commits one small metadata write before each search;
// "commit" is that write alone, to subtract.
func BenchmarkColdPages(b *testing.B) {
	e := labEnv(b)
	ctx := context.Background()
	commit := func(b *testing.B) {
		if err := e.db.Update(ctx, func(w store.Writer) error { return w.SetMeta("bench-tick", []byte{1}) }); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"warm", "cold", "commit"} {
		b.Run(mode, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				if mode != "warm" {
					commit(b)
				}
				if mode == "commit" {
					continue
				}
				q := labQuery(i)
				if _, err := e.eng.Search(ctx, fhirapi.SearchRequest{Type: "Observation", Query: q}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
