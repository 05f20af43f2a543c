package search

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// bodySiteParam is a custom SearchParameter R4 does not define for
// Observation: Observation.bodySite as a token.
func bodySiteParam(id, status string) string {
	return fmt.Sprintf(`{"resourceType":"SearchParameter","id":%q,"url":"http://example.org/fhir/SearchParameter/%s",
		"name":"BodySite","status":%q,"description":"Where on the body the observation was made","code":"body-site",
		"base":["Observation"],"type":"token","expression":"Observation.bodySite"}`, id, id, status)
}

func siteObs(id, code string) map[string]any {
	return map[string]any{"resourceType": "Observation", "id": id, "status": "final",
		"code":     map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8310-5"}}},
		"bodySite": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code}}}}
}

func (e *env) put(res map[string]any) {
	e.t.Helper()
	raw, _ := json.Marshal(res)
	if st, m := e.do("PUT", fmt.Sprintf("/fhir/%s/%s", res["resourceType"], res["id"]), string(raw), "Content-Type", "application/fhir+json"); st != 200 && st != 201 {
		e.t.Fatalf("PUT %s/%s: %d %v", res["resourceType"], res["id"], st, m)
	}
}

// TestCustomSearchParameter: an active SearchParameter posted to the
// server indexes resources written after it at once; resources written
// before are found only after a reindex, and until then the answer says it
// may be incomplete; /metadata lists it; the parameter survives a restart;
// deleting it or storing it retired takes it out of use.
func TestCustomSearchParameter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.load(siteObs("before", "368209003"), siteObs("other", "40983000"))
	if b := e.get("Observation?body-site=368209003"); b.status != 400 {
		t.Fatalf("an undefined parameter answered %d, want 400", b.status)
	}
	if st, m := e.do("PUT", "/fhir/SearchParameter/body-site", bodySiteParam("body-site", "active"), "Content-Type", "application/fhir+json"); st != 201 {
		t.Fatalf("PUT SearchParameter: %d %v", st, m)
	}
	e.put(siteObs("after", "368209003"))

	b := e.get("Observation?body-site=368209003")
	if b.status != 200 || !slices.Equal(b.matches, []string{"Observation/after"}) || !b.outcome {
		t.Fatalf("before the reindex: %d %v (outcome %v), want only the resource written after the parameter, with a warning", b.status, b.matches, b.outcome)
	}
	if !strings.Contains(fmt.Sprint(b.raw), "phivault reindex") {
		t.Errorf("the warning does not say how to complete the index: %v", b.raw)
	}
	if p := e.eng.CustomParams(); len(p) != 1 || !slices.Equal(p[0].Pending, []string{"Observation"}) {
		t.Errorf("CustomParams before the reindex: %+v", p)
	}

	rep, err := e.eng.Reindex(ctx, []string{"Observation"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resources != 3 || rep.Types != 1 {
		t.Errorf("reindex report %+v, want 3 Observations of 1 type", rep)
	}
	b = e.get("Observation?body-site=368209003")
	if b.status != 200 || !slices.Equal(sorted(b.matches), []string{"Observation/after", "Observation/before"}) || b.outcome {
		t.Fatalf("after the reindex: %d %v (outcome %v)", b.status, b.matches, b.outcome)
	}
	if b := e.get("Observation?body-site:not=368209003"); !slices.Equal(b.matches, []string{"Observation/other"}) {
		t.Errorf(":not after the reindex: %v", b.matches)
	}
	if b := e.get("Observation?body-site:missing=true"); len(b.matches) != 0 {
		t.Errorf(":missing=true after the reindex: %v", b.matches)
	}

	_, m := e.do("GET", "/fhir/metadata", "")
	if !strings.Contains(mustJSON(t, m), `"name":"body-site"`) {
		t.Error("/metadata does not list the custom parameter")
	}

	// A new engine over the same store (a restart) uses it too.
	e2 := New(e.b)
	e2.SetRecords(e.rec)
	if err := e2.LoadParams(ctx); err != nil {
		t.Fatal(err)
	}
	if p, ok := e2.params().Lookup("Observation", "body-site"); !ok || p.Expression != "Observation.bodySite" {
		t.Errorf("after a restart the parameter is %v, %v", p, ok)
	}

	// Retired: stored, no longer in use.
	if st, m := e.do("PUT", "/fhir/SearchParameter/body-site", bodySiteParam("body-site", "retired"), "Content-Type", "application/fhir+json"); st != 200 {
		t.Fatalf("retire: %d %v", st, m)
	}
	if b := e.get("Observation?body-site=368209003"); b.status != 400 {
		t.Errorf("a retired parameter answered %d, want 400", b.status)
	}
	if st, m := e.do("PUT", "/fhir/SearchParameter/body-site", bodySiteParam("body-site", "active"), "Content-Type", "application/fhir+json"); st != 200 {
		t.Fatalf("reactivate: %d %v", st, m)
	}
	if b := e.get("Observation?body-site=368209003"); b.status != 200 || !b.outcome {
		t.Errorf("a changed parameter must warn until the next reindex: %d outcome %v", b.status, b.outcome)
	}
	if st, m := e.do("DELETE", "/fhir/SearchParameter/body-site", ""); st != 200 && st != 204 {
		t.Fatalf("delete: %d %v", st, m)
	}
	if b := e.get("Observation?body-site=368209003"); b.status != 400 {
		t.Errorf("a deleted parameter answered %d, want 400", b.status)
	}
}

// TestCustomSearchParameterRefused: a SearchParameter that would be active
// and cannot be used is refused with 422 naming the element, and nothing
// is stored; one that is not active is stored as it is.
func TestCustomSearchParameterRefused(t *testing.T) {
	e := newEnv(t)
	spec := func(code, typ, expr string) string {
		return fmt.Sprintf(`{"resourceType":"SearchParameter","url":"http://example.org/sp/%s","name":"X","status":"active",
			"description":"x","code":%q,"base":["Observation"],"type":%q,"expression":%q}`, code, code, typ, expr)
	}
	for _, c := range []struct{ name, body, loc string }{
		{"a code R4 defines for the base", spec("code", "token", "Observation.code"), "SearchParameter.code"},
		{"a code every resource has", spec("_tag", "token", "Resource.meta.tag"), "SearchParameter.code"},
		{"an expression that does not parse", spec("broken", "token", "Observation.(code"), "SearchParameter.expression"},
		{"no expression", `{"resourceType":"SearchParameter","url":"http://example.org/sp/n","name":"X","status":"active","description":"x","code":"noexpr","base":["Observation"],"type":"token"}`, "SearchParameter.expression"},
		{"type special", spec("near2", "special", "Observation.code"), "SearchParameter.type"},
	} {
		st, m := e.do("POST", "/fhir/SearchParameter", c.body, "Content-Type", "application/fhir+json")
		if st != 422 || m["resourceType"] != "OperationOutcome" || !strings.Contains(mustJSON(t, m), c.loc) {
			t.Errorf("%s: %d %v, want 422 naming %s", c.name, st, m, c.loc)
		}
	}
	// A second custom parameter may not take the code of the first.
	if st, m := e.do("POST", "/fhir/SearchParameter", spec("site2", "token", "Observation.bodySite"), "Content-Type", "application/fhir+json"); st != 201 {
		t.Fatalf("first: %d %v", st, m)
	}
	if st, _ := e.do("POST", "/fhir/SearchParameter", strings.Replace(spec("site2", "string", "Observation.note.text"), "sp/site2", "sp/other", 1), "Content-Type", "application/fhir+json"); st != 422 {
		t.Errorf("a second parameter with the same code: %d, want 422", st)
	}
	n, err := e.rec.Count(context.Background(), store.MatchQuery{Type: "SearchParameter"})
	if err != nil || n != 1 {
		t.Errorf("%d SearchParameters stored (%v), want only the one accepted", n, err)
	}
	draft := strings.Replace(spec("code", "token", "Observation.(code"), `"active"`, `"draft"`, 1)
	if st, m := e.do("POST", "/fhir/SearchParameter", draft, "Content-Type", "application/fhir+json"); st != 201 {
		t.Errorf("a draft is stored as it is, not used: %d %v", st, m)
	}
}

// TestReindexOnline: a reindex while resources are updated and searched.
// Every search answers; afterwards each resource is found by its current
// value and by no earlier one (a resource written during the run keeps the
// tokens of its own write, never the reindex's older ones).
func TestReindexOnline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 300
	var res []map[string]any
	for i := range n {
		res = append(res, siteObs(fmt.Sprint("o", i), "v0"))
	}
	e.load(res...)
	if st, m := e.do("PUT", "/fhir/SearchParameter/body-site", bodySiteParam("body-site", "active"), "Content-Type", "application/fhir+json"); st != 201 {
		t.Fatalf("PUT SearchParameter: %d %v", st, m)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	final := make([]string, n)
	for i := range final {
		final[i] = "v0"
	}
	wg.Add(2)
	go func() { // writer: moves resources to v1, then v2
		defer wg.Done()
		for round, v := range []string{"v1", "v2"} {
			for i := round; i < n; i += 3 {
				r := siteObs(fmt.Sprint("o", i), v)
				raw, _ := json.Marshal(r)
				parsed, _ := parseJSON(raw)
				if _, err := e.rec.Commit(ctx, opsPut(parsed), nil); err != nil {
					t.Errorf("update o%d: %v", i, err)
					return
				}
				final[i] = v
			}
		}
	}()
	go func() { // reader: searches keep answering
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b := e.get("Observation?code=8310-5&_count=5"); b.status != 200 {
				t.Errorf("search during the reindex: %d", b.status)
				return
			}
		}
	}()
	rep, err := e.eng.Reindex(ctx, nil, nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resources+rep.Raced < n {
		t.Errorf("report %+v covers fewer than the %d Observations", rep, n)
	}
	want := map[string][]string{}
	for i, v := range final {
		want[v] = append(want[v], fmt.Sprint("Observation/o", i))
	}
	for _, v := range []string{"v0", "v1", "v2"} {
		got := sorted(e.walk("Observation?body-site=" + v + "&_count=100"))
		if !slices.Equal(got, sorted(want[v])) {
			t.Errorf("body-site=%s: %d found, want %d", v, len(got), len(want[v]))
		}
	}
	if b := e.get("Observation?body-site=v0"); b.outcome {
		t.Error("a complete reindex still warns of an incomplete index")
	}
}

func opsPut(res map[string]any) []records.Op {
	return []records.Op{{Type: res["resourceType"].(string), ID: res["id"].(string), Resource: res}}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
