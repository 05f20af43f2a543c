package session

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkPrincipal measures the per-request session check (cookie hash,
// table lookup, expiry, idle timer, Valid on an in-memory directory).
func BenchmarkPrincipal(b *testing.B) {
	f := newFixture(b, Options{})
	br := newBrowser()
	w := httptest.NewRecorder()
	if err := f.m.Start(w, br.req("POST"), "alice", "password+totp", true); err != nil {
		b.Fatal(err)
	}
	br.keep(w)
	r := br.req("GET")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := f.m.Principal(r); !ok {
				b.Fatal("no principal")
			}
		}
	})
}

// BenchmarkStart measures signing in (audit event, new cookie, table
// insert) with an in-memory audit log.
func BenchmarkStart(b *testing.B) {
	f := newFixture(b, Options{MaxSessions: 1 << 30})
	r := httptest.NewRequest("POST", "https://console.example/login", nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := f.m.Start(httptest.NewRecorder(), r, "alice", "password+totp", true); err != nil {
			b.Fatal(err)
		}
	}
}
