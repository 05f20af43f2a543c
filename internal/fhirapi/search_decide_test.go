package fhirapi_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
)

// reads counts the read decisions p1Only made about typ/id.
func (env *authzEnv) reads(typ, id string) int {
	n := 0
	for _, r := range env.policy.requests() {
		if r.Action == policy.Read && r.Type == typ && r.ID == id {
			n++
		}
	}
	return n
}

// A search decides each version it considers once: the handler, which
// decides every entry it sends, reuses the decision the engine made.
func TestSearchDecidesEachVersionOnce(t *testing.T) {
	env := newAuthzEnv(t)
	a := env.call(u1, "GET", "/fhir/Observation?code=1111-1,2222-2&_include=Observation:subject", "")
	if a.status != 200 || !cmp.Equal(a.matches, []string{"Observation/o1", "Observation/o4"}) || !cmp.Equal(a.includes, []string{"Patient/p1"}) {
		t.Fatalf("%d matches %v includes %v", a.status, a.matches, a.includes)
	}
	for _, ref := range [][2]string{{"Observation", "o1"}, {"Observation", "o3"}, {"Observation", "o4"}, {"Patient", "p1"}} {
		if n := env.reads(ref[0], ref[1]); n != 1 {
			t.Errorf("%s/%s: %d read decisions, want 1", ref[0], ref[1], n)
		}
	}
}

// leaky is a searcher that ignores the caller's visibility.
type leaky struct{ findOnly }

func (l leaky) Search(ctx context.Context, req fhirapi.SearchRequest) (*fhirapi.SearchPage, error) {
	req.Visible = nil
	return l.eng.Search(ctx, req)
}

// The handler's own decision stands whatever the searcher did: a
// searcher that never asks returns hidden matches, and none is sent.
func TestSearchHandlerDecidesWhatTheSearcherDidNot(t *testing.T) {
	env := newAuthzEnv(t)
	env.api = fhirapi.New(fhirapi.Config{Records: env.rec, Search: leaky{findOnly{env.eng}}, Policy: env.policy, Audit: env.api.Audit, Base: base})
	a := env.call(u1, "GET", "/fhir/Observation?code=1111-1", "")
	if a.status != 200 || !cmp.Equal(a.matches, []string{"Observation/o1"}) {
		t.Fatalf("%d matches %v, want o1 only", a.status, a.matches)
	}
	if env.reads("Observation", "o3") != 1 {
		t.Errorf("the hidden o3 was decided %d times, want once (by the handler)", env.reads("Observation", "o3"))
	}
}
