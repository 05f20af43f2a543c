package smart

import (
	"context"
	"testing"
)

// BenchmarkIssue measures signing an access token (ES256) for a backend
// grant, without the HTTP and client-assertion work around it.
func BenchmarkIssue(b *testing.B) {
	h := newHarnessOn(b, "mem")
	g := grant{ClientID: "c1", Backend: true, Scopes: []string{"system/Observation.rs"}, SID: "s1"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.srv.issue(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkCheck measures validating an access token seen before (its
// signature verified once; claims, revocation and client checked) as the
// FHIR API does for an app's repeated requests.
func BenchmarkCheck(b *testing.B) { benchCheck(b, false) }

// BenchmarkCheckCold measures validating a token never seen before
// (ES256 signature verification included).
func BenchmarkCheckCold(b *testing.B) { benchCheck(b, true) }

func benchCheck(b *testing.B, cold bool) {
	h := newHarnessOn(b, "mem")
	be, _ := backendClient(b, h)
	tok := be.token(b, "system/Observation.rs")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if cold {
			h.srv.verified.Clear()
		}
		if _, err := h.srv.Check(tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkClientCredentials measures the whole backend-services token
// request over HTTPS: assertion check (ES384), jti record, issuance.
func BenchmarkClientCredentials(b *testing.B) {
	h := newHarnessOn(b, "mem")
	be, _ := backendClient(b, h)
	b.ResetTimer()
	for b.Loop() {
		be.token(b, "system/Observation.rs")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
