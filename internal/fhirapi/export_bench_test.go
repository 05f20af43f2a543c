package fhirapi

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// BenchmarkExport compares a whole bulk export (kick-off, per-resource
// decisions, sealing, status, download with its audit event) with only
// reading the same resources through records; the ratio is the cost of
// export's authorization, encryption at rest and audit.
func BenchmarkExport(b *testing.B) {
	env := newExportEnv(b, time.Hour)
	const n = 2000
	var docs []string
	for i := range n {
		docs = append(docs, fmt.Sprintf(`{"resourceType":"Observation","id":"b%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p%d"}}`, i, 1+i%2))
	}
	env.load(docs...)
	b.Run("export", func(b *testing.B) {
		for b.Loop() {
			m := env.wait(exportAdmin, env.kickoff(exportAdmin, "/fhir/$export?_type=Observation"))
			if got, _ := env.download(exportAdmin, m); len(got) != n+2 {
				b.Fatalf("exported %d", len(got))
			}
			env.api.exports.remove(context.Background(), env.api, env.api.exports.get(jobOf(m.Output[0].URL), exportAdmin))
		}
		b.ReportMetric(float64(n+2)*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			ids, err := env.rec.Match(context.Background(), store.MatchQuery{Type: "Observation"})
			if err != nil {
				b.Fatal(err)
			}
			if es, err := env.rec.ReadMany(context.Background(), "Observation", ids); err != nil || len(es) != n+2 {
				b.Fatal(len(es), err)
			}
		}
		b.ReportMetric(float64(n+2)*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
	})
}

// jobOf returns the _jobId of an export URL.
func jobOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Query().Get("_jobId")
}
