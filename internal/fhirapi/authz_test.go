package fhirapi_test

// Regression tests for authorization bugs found in other FHIR servers
// (issue 6, acceptance 2), against the real API over SQLite and the search
// engine, with the caller allowed only patient p1's compartment. p2 and
// its Observations o2, o3 and o5 are hidden; o5 is performed by p1 and has
// member o1, o4 (visible) is performed by p2. Each test names the
// protection it proves; each was checked to fail with that protection
// removed.

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
)

func TestFixtureCompartments(t *testing.T) {
	env := newAuthzEnv(t)
	for id, want := range map[string]string{"o1": "p1", "o2": "p2", "o4": "p1", "o5": "p2"} {
		e, err := env.rec.Read(context.Background(), "Observation", id)
		if err != nil || e.Patient != want {
			t.Fatalf("Observation/%s is in compartment %q (%v), the tests assume %q", id, e.Patient, err, want)
		}
	}
}

// Protection: fhirapi.wrap denies a principal without a user id before any
// decision (the policy here would allow p1's data to anyone).
func TestNoUserClaimDeniedBeforePolicy(t *testing.T) {
	env := newAuthzEnv(t)
	anon := policy.Principal{Roles: []string{"physician"}, Patient: "p1", Scopes: []string{"patient/*.rs"}, Method: "smart"}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/fhir/Observation/o1", ""},
		{"GET", "/fhir/Observation?subject=Patient/p1", ""},
		{"GET", "/fhir/Observation/o1/_history", ""},
		{"POST", "/fhir/Observation", obs("x", "p1", "1111-1", "")},
		{"DELETE", "/fhir/Observation/o1", ""},
		{"POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/o1"}}]}`},
	} {
		if a := env.call(anon, r.method, r.path, r.body); a.status != 403 || len(a.matches) > 0 {
			t.Errorf("%s %s without a user id: %d %v, want 403 and nothing", r.method, r.path, a.status, a.matches)
		}
	}
	if n := len(env.policy.requests()); n != 0 {
		t.Errorf("the policy was asked %d times for a principal without a user id", n)
	}
	if ok, _ := env.exists("Observation", "o1"); !ok {
		t.Error("Observation/o1 was deleted by a principal without a user id")
	}
}

// Protection: include.go and the handler leave hidden resources out of
// _include, _revinclude and :iterate, and :iterate does not walk through a
// hidden resource.
func TestIncludesOnlyVisible(t *testing.T) {
	env := newAuthzEnv(t)
	for _, tc := range []struct {
		query             string
		matches, includes []string
	}{
		{"Observation?_id=o4&_include=Observation:performer", []string{"Observation/o4"}, nil},
		{"Observation?_id=o1,o4&_include=Observation:subject&_include=Observation:performer", []string{"Observation/o1", "Observation/o4"}, []string{"Patient/p1"}},
		{"Patient?_id=p1,p2&_revinclude=Observation:subject", []string{"Patient/p1"}, []string{"Observation/o1", "Observation/o4", "Observation/o6"}},
		{"Patient?_id=p1&_revinclude=Observation:performer", []string{"Patient/p1"}, nil},
		// o5 (hidden) performs for p1 and has member o1: o1 must not be
		// reached through it.
		{"Patient?_id=p1&_revinclude=Observation:performer&_include:iterate=Observation:has-member", []string{"Patient/p1"}, nil},
		{"Observation?_id=o4&_include=Observation:performer&_revinclude:iterate=Observation:subject", []string{"Observation/o4"}, nil},
	} {
		a := env.call(u1, "GET", "/fhir/"+tc.query, "")
		slices.Sort(a.includes)
		if a.status != 200 || !cmp.Equal(tc.matches, a.matches) || !cmp.Equal(tc.includes, a.includes) {
			t.Errorf("%s: %d matches %v includes %v, want %v %v", tc.query, a.status, a.matches, a.includes, tc.matches, tc.includes)
		}
	}
}

// Protection: chain.go evaluates the inner set of a chain and of _has
// only over resources the caller may read (Visible in the search request).
func TestChainAndHasDoNotRevealHiddenValues(t *testing.T) {
	env := newAuthzEnv(t)
	for _, tc := range []struct {
		query   string
		matches []string
	}{
		// Controls: the same shapes over visible resources do match.
		{"Observation?subject:Patient.family=Alpha&_sort=_id", []string{"Observation/o1", "Observation/o4", "Observation/o6"}},
		{"Patient?_has:Observation:subject:code=1111-1", []string{"Patient/p1"}},
		// o4 is visible; its performer p2 is not: p2's name must not select it.
		{"Observation?performer:Patient.family=Beta", nil},
		{"Observation?performer:Patient.name=Beta", nil},
		// p1 is visible; the Observation it performed (o5) is not: its code
		// must not select p1.
		{"Patient?_has:Observation:performer:code=9999-9", nil},
		{"Patient?_has:Observation:subject:code=9999-9", nil},
		{"Observation?_has:Observation:has-member:code=9999-9", nil},
	} {
		a := env.call(u1, "GET", "/fhir/"+tc.query, "")
		if a.status != 200 || !cmp.Equal(tc.matches, a.matches) || a.total != float64(len(tc.matches)) {
			t.Errorf("%s: %d %v total %v, want %v", tc.query, a.status, a.matches, a.total, tc.matches)
		}
	}
}

// Protection: exec.go counts totals (also _summary=count) over visible
// matches only, and the handler's unpaged path reads and decides every
// match before counting.
func TestTotalsCountOnlyVisible(t *testing.T) {
	env := newAuthzEnv(t)
	for _, q := range []string{
		"Observation?code=1111-1", "Observation?code=1111-1&_total=accurate", "Observation?code=1111-1&_summary=count",
		"Observation?code=1111-1&_count=0", "Observation?code=9999-9,1111-1&_sort=-_id",
	} {
		if a := env.call(u1, "GET", "/fhir/"+q, ""); a.status != 200 || a.total != 1 {
			t.Errorf("%s: %d total %v, want 1 (o1 only)", q, a.status, a.total)
		}
	}
	plain := fhirapi.New(fhirapi.Config{Records: env.rec, Search: findOnly{env.eng}, Policy: env.policy, Audit: env.api.Audit, Base: base})
	env.api = plain
	for _, q := range []string{"Observation?code=1111-1", "Observation?code=1111-1&_count=0", "Observation?code=9999-9"} {
		a := env.call(u1, "GET", "/fhir/"+q, "")
		want := 1.0
		if strings.Contains(q, "9999") {
			want = 0
		}
		if a.status != 200 || a.total != want {
			t.Errorf("unpaged %s: %d total %v, want %v", q, a.status, a.total, want)
		}
	}
}

// Protection: cursor.go binds a paging link to the caller's user and
// session; another caller replaying it gets 400 and no data.
func TestPagingLinkBoundToCaller(t *testing.T) {
	env := newAuthzEnv(t)
	first := env.call(u1, "GET", "/fhir/Observation?subject=Patient/p1&_count=1", "")
	if first.status != 200 || first.next == "" {
		t.Fatalf("first page: %d next %q", first.status, first.next)
	}
	own := env.call(u1, "GET", "/fhir"+first.next, "")
	if own.status != 200 || len(own.matches) != 1 || own.matches[0] == first.matches[0] {
		t.Fatalf("the caller's own next page: %d %v", own.status, own.matches)
	}
	for _, who := range []policy.Principal{user("u2", "s1"), user("u1", "s2"), user("u2", "")} {
		a := env.call(who, "GET", "/fhir"+first.next, "")
		if a.status != 400 || len(a.matches) != 0 {
			t.Errorf("link replayed by %s/%s: %d %v, want 400 and nothing", who.UserID, who.SessionID, a.status, a.matches)
		}
	}
}

// Protection: crud.go and bundle_tx.go resolve conditions with find (the
// caller's visibility): a hidden match is neither touched nor revealed.
func TestConditionalOpsIgnoreHidden(t *testing.T) {
	env := newAuthzEnv(t)
	_, v2 := env.exists("Observation", "o2")
	del := env.call(u1, "DELETE", "/fhir/Observation?identifier=urn:lab|L2", "")
	none := env.call(u1, "DELETE", "/fhir/Observation?identifier=urn:lab|NOPE", "")
	if del.status != none.status || !cmp.Equal(del.body, none.body) {
		t.Errorf("conditional delete of a hidden match answers %d %v, of no match %d %v", del.status, del.body, none.status, none.body)
	}
	if ok, v := env.exists("Observation", "o2"); !ok || v != v2 {
		t.Fatal("a conditional delete removed a resource the caller cannot read")
	}
	up := env.call(u1, "PUT", "/fhir/Observation?identifier=urn:lab|L2", obs("", "p1", "1111-1", `,"identifier":[{"system":"urn:lab","value":"L2"}]`))
	if up.status != 201 {
		t.Errorf("conditional update over a hidden match: %d %v, want 201 (a new resource)", up.status, up.body)
	}
	if _, v := env.exists("Observation", "o2"); v != v2 {
		t.Error("a conditional update changed a resource the caller cannot read")
	}
	cr := env.call(u1, "POST", "/fhir/Observation", obs("", "p1", "1111-1", ""), "If-None-Exist", "code=9999-9&subject=Patient/p2")
	if cr.status != 201 {
		t.Errorf("conditional create over a hidden match: %d, want 201", cr.status)
	}
	if c := env.call(u1, "POST", "/fhir/Observation", obs("", "p1", "1111-1", ""), "If-None-Exist", "identifier=urn:lab|L1"); c.status != 200 || c.body["id"] != "o1" {
		t.Errorf("conditional create over a visible match: %d %v, want 200 with o1", c.status, c.body["id"])
	}
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation?identifier=urn:lab|L2"}}]}`
	env.call(u1, "POST", "/fhir", tx)
	if ok, v := env.exists("Observation", "o2"); !ok || v != v2 {
		t.Error("a transaction's conditional delete removed a resource the caller cannot read")
	}
	ref := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation"},"resource":` +
		obs("", "p1", "1111-1", `,"hasMember":[{"reference":"Observation?identifier=urn:lab|L2"}]`) + `}]}`
	if a := env.call(u1, "POST", "/fhir", ref); a.status != 412 {
		t.Errorf("a conditional reference to a hidden resource: %d, want 412 as for no match", a.status)
	}
}

// Protection: history.go and the read path decide every version.
func TestHistoryAndVreadOfHidden(t *testing.T) {
	env := newAuthzEnv(t)
	for _, p := range []string{"/fhir/Observation/o2/_history/1", "/fhir/Observation/o2/_history", "/fhir/Observation/o2", "/fhir/Patient/p2/_history/1"} {
		if a := env.call(u1, "GET", p, ""); a.status != 403 || len(a.matches) > 0 || a.body["resourceType"] != "OperationOutcome" {
			t.Errorf("GET %s: %d %v, want 403", p, a.status, a.matches)
		}
	}
	a := env.call(u1, "GET", "/fhir/Observation/_history", "")
	slices.Sort(a.matches)
	if want := []string{"Observation/o1", "Observation/o4", "Observation/o6"}; a.status != 200 || !cmp.Equal(want, a.matches) {
		t.Errorf("type history: %d %v, want %v", a.status, a.matches, want)
	}
	if a := env.call(u1, "GET", "/fhir/_history", ""); a.status == 200 && slices.ContainsFunc(a.matches, func(s string) bool {
		return strings.HasSuffix(s, "2") || s == "Observation/o3" || s == "Observation/o5"
	}) {
		t.Errorf("system history shows hidden versions: %v", a.matches)
	}
}

// Protection: batch entries run through the same handlers, transaction
// entries through the same decisions.
func TestBundleEntriesDecided(t *testing.T) {
	env := newAuthzEnv(t)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"GET","url":"Observation/o2"}},
		{"request":{"method":"GET","url":"Observation/o1"}},
		{"request":{"method":"GET","url":"Observation?code=1111-1"}},
		{"request":{"method":"DELETE","url":"Observation/o3"}}]}`
	a := env.call(u1, "POST", "/fhir", batch)
	var got []string
	entries, _ := a.body["entry"].([]any)
	for _, e := range entries {
		r, _ := e.(map[string]any)["response"].(map[string]any)
		s, _ := r["status"].(string)
		got = append(got, strings.Fields(s)[0])
	}
	if want := []string{"403", "200", "200", "403"}; a.status != 200 || !cmp.Equal(want, got) {
		t.Errorf("batch statuses %v, want %v", got, want)
	}
	if strings.Contains(mustJSON(a.body), `"o2"`) || strings.Contains(mustJSON(a.body), `"o3"`) {
		t.Error("a batch response holds a hidden resource")
	}
	for _, tx := range []string{
		`{"request":{"method":"DELETE","url":"Observation/o3"}}`,
		`{"request":{"method":"PUT","url":"Observation/o3"},"resource":` + obs("o3", "p1", "1111-1", "") + `}`,
		`{"request":{"method":"POST","url":"Observation"},"resource":` + obs("", "p2", "1111-1", "") + `}`,
	} {
		a := env.call(u1, "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[`+tx+`]}`)
		if a.status != 403 {
			t.Errorf("transaction %s: %d, want 403", tx, a.status)
		}
	}
	if ok, v := env.exists("Observation", "o3"); !ok || v != 1 {
		t.Error("a transaction changed a resource the caller cannot change")
	}
	// A transaction's GET runs after its writes, through the read handler:
	// its entry reports 403 and holds nothing.
	a = env.call(u1, "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Observation/o2"}}]}`)
	if s := mustJSON(a.body); a.status == 200 && (!strings.Contains(s, `"403`) || strings.Contains(s, `"o2"`)) {
		t.Errorf("transaction GET of a hidden resource: %d %s", a.status, s)
	}
}

// Protection: the API fills Request.Labels and Request.Category from the
// body at hand (read, search results, writes).
func TestDecisionsCarryLabelsAndCategory(t *testing.T) {
	env := newAuthzEnv(t)
	env.load(obs("o7", "p1", "1111-1", `,"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}`))
	env.call(u1, "GET", "/fhir/Observation/o7", "")
	env.call(u1, "GET", "/fhir/Observation?_id=o7", "")
	env.call(u1, "POST", "/fhir/Observation", obs("", "p1", "1111-1", `,"meta":{"security":[{"code":"R"}]}`))
	kinds := map[policy.Action]int{}
	for _, r := range env.policy.requests() {
		if r.Type != "Observation" || r.Action == policy.Search {
			continue
		}
		if !cmp.Equal([]string{"R"}, r.Labels) || !cmp.Equal([]string{"laboratory"}, r.Category) {
			t.Errorf("%s %s/%s decided with labels %v category %v", r.Action, r.Type, r.ID, r.Labels, r.Category)
		}
		kinds[r.Action]++
	}
	if kinds[policy.Read] < 2 || kinds[policy.Create] < 1 {
		t.Errorf("decisions seen: %v", kinds)
	}
}

func mustJSON(v any) string {
	b, _ := jsonMarshal(v)
	return string(b)
}
