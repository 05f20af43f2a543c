package search

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func byID(data []map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, m := range data {
		out[fmt.Sprint(m["resourceType"], "/", m["id"])] = m
	}
	return out
}

func TestChainsHasIncludesSortPaging(t *testing.T) {
	e := newEnv(t)
	data := fixture()
	e.load(data...)
	all := byID(data)
	filter := func(typ string, fn func(m map[string]any) bool) []string {
		var out []string
		for k, m := range all {
			if m["resourceType"] == typ && fn(m) {
				out = append(out, k)
			}
		}
		return sorted(out)
	}
	patientFamily := func(ref, prefix string) bool {
		p := all[ref]
		return p != nil && hasFamilyPrefix(p, prefix)
	}
	check := func(query string, want []string) {
		t.Helper()
		if diff := cmp.Diff(want, sorted(e.walk(query+"&_count=9"))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", query, diff)
		}
	}
	check("Observation?subject:Patient.family=smith", filter("Observation", func(m map[string]any) bool { return patientFamily(refOf(m, "subject"), "smith") }))
	check("Observation?encounter:Encounter.subject:Patient.family=mil", filter("Observation", func(m map[string]any) bool {
		enc := all[refOf(m, "encounter")]
		return enc != nil && patientFamily(refOf(enc, "subject"), "mil")
	}))
	check("Observation?patient.organization.name=clinic b", filter("Observation", func(m map[string]any) bool {
		return refOf(all[refOf(m, "subject")], "managingOrganization") == "Organization/org1"
	}))
	hasGlucose := map[string]bool{}
	for _, m := range all {
		if m["resourceType"] == "Observation" && str(m, "code", "text") == "Glucose" {
			if v, _, ok := quantity(m); ok && v > 200 {
				hasGlucose[refOf(m, "subject")] = true
			}
		}
	}
	check("Patient?_has:Observation:patient:code=2339-0&_has:Observation:patient:value-quantity=gt200", filter("Patient", func(m map[string]any) bool {
		// the two _has are independent: each needs some observation
		return hasObs(all, m, func(o map[string]any) bool { return str(o, "code", "text") == "Glucose" }) &&
			hasObs(all, m, func(o map[string]any) bool { v, _, ok := quantity(o); return ok && v > 200 })
	}))
	check("Organization?_has:Patient:organization:_has:Observation:patient:code=718-7", filter("Organization", func(org map[string]any) bool {
		for _, p := range all {
			if p["resourceType"] == "Patient" && refOf(p, "managingOrganization") == "Organization/"+org["id"].(string) &&
				hasObs(all, p, func(o map[string]any) bool { return str(o, "code", "text") == "Hemoglobin" }) {
				return true
			}
		}
		return false
	}))

	// _include and _revinclude (:iterate) on one page.
	b := e.get("Observation?_id=o001,o002,o003&_include=Observation:subject&_include:iterate=Patient:organization")
	var wantInc []string
	for _, id := range []string{"o001", "o002", "o003"} {
		p := refOf(all["Observation/"+id], "subject")
		wantInc = append(wantInc, p, refOf(all[p], "managingOrganization"))
	}
	if diff := cmp.Diff(dedupe(sorted(wantInc)), sorted(b.includes)); diff != "" {
		t.Errorf("_include:iterate (-want +got):\n%s", diff)
	}
	b = e.get("Patient?_id=p04&_revinclude=Observation:subject&_revinclude=Encounter:patient&_count=5")
	wantRev := filter("Observation", func(m map[string]any) bool { return refOf(m, "subject") == "Patient/p04" })
	wantRev = append(wantRev, filter("Encounter", func(m map[string]any) bool { return refOf(m, "subject") == "Patient/p04" })...)
	if diff := cmp.Diff(sorted(wantRev), sorted(b.includes)); diff != "" {
		t.Errorf("_revinclude (-want +got):\n%s", diff)
	}
	if b = e.get("Encounter?_id=e01&_include=*"); len(b.includes) != 2 {
		t.Errorf("_include=* gave %v", b.includes)
	}

	// _sort on dates and strings, both ways, walked with next and back with previous.
	type keyed struct {
		id  string
		key time.Time
	}
	var obs []keyed
	for k, m := range all {
		if m["resourceType"] == "Observation" && refOf(m, "subject") == "Patient/p05" {
			_, hi, ok := effective(m)
			if !ok {
				hi = time.Time{}
			}
			obs = append(obs, keyed{k, hi})
		}
	}
	sort.Slice(obs, func(i, j int) bool {
		a, b := obs[i], obs[j]
		if a.key.IsZero() != b.key.IsZero() {
			return b.key.IsZero()
		}
		if !a.key.Equal(b.key) {
			return a.key.After(b.key)
		}
		return a.id < b.id
	})
	var wantOrder []string
	for _, o := range obs {
		wantOrder = append(wantOrder, o.id)
	}
	for _, n := range []int{1, 3, 50} {
		got := e.walk(fmt.Sprintf("Observation?patient=p05&_sort=-date&_count=%d", n))
		if diff := cmp.Diff(wantOrder, got); diff != "" {
			t.Errorf("_sort=-date _count=%d (-want +got):\n%s", n, diff)
		}
	}
	// previous links retrace the walk.
	var pages [][]string
	path := "Observation?patient=p05&_sort=-date&_count=2"
	var last bundle
	for path != "" {
		last = e.get(path)
		pages = append(pages, last.matches)
		path = last.next
	}
	for i := len(pages) - 2; i >= 0 && last.prev != ""; i-- {
		last = e.get(last.prev)
		if !slices.Equal(last.matches, pages[i]) {
			t.Fatalf("previous page %d: %v, want %v", i, last.matches, pages[i])
		}
	}
	var fam []string
	for k, m := range all {
		if m["resourceType"] == "Patient" {
			fam = append(fam, fmt.Sprintf("%s|%s", searchparamNormalizeFamily(m), k))
		}
	}
	sort.Strings(fam)
	var wantFam []string
	for _, f := range fam {
		wantFam = append(wantFam, f[bytes.IndexByte([]byte(f), '|')+1:])
	}
	if diff := cmp.Diff(wantFam, e.walk("Patient?_sort=family,_id&_count=7")); diff != "" {
		t.Errorf("_sort=family (-want +got):\n%s", diff)
	}

	// POST _search with a form body equals GET.
	form := url.Values{"code": {"718-7"}, "_count": {"4"}}
	st, m := e.do("POST", "/fhir/Observation/_search", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if pb := e.decode(st, m); !slices.Equal(pb.matches, e.get("Observation?"+form.Encode()).matches) || pb.total != len(filter("Observation", func(m map[string]any) bool { return str(m, "code", "text") == "Hemoglobin" })) {
		t.Errorf("POST _search = %v (total %d)", pb.matches, pb.total)
	}
	// _summary=count, _total=none.
	if b = e.get("Observation?code=718-7&_summary=count"); len(b.matches) != 0 || !b.hasTotal || b.total == 0 {
		t.Errorf("_summary=count: %+v", b)
	}
	if b = e.get("Observation?code=718-7&_total=none"); b.hasTotal {
		t.Errorf("_total=none gave a total")
	}
	// Paging stays correct while resources are created during the walk.
	path = "Observation?code=2339-0&_count=7"
	var walked []string
	for i := 0; path != ""; i++ {
		b := e.get(path)
		walked = append(walked, b.matches...)
		path = b.next
		e.load(map[string]any{"resourceType": "Observation", "id": fmt.Sprintf("new%03d", i), "status": "final",
			"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "2339-0"}}}})
	}
	orig := filter("Observation", func(m map[string]any) bool { return str(m, "code", "text") == "Glucose" })
	seen := map[string]bool{}
	for _, w := range walked {
		if seen[w] {
			t.Errorf("duplicate %s while creating", w)
		}
		seen[w] = true
	}
	for _, o := range orig {
		if !seen[o] {
			t.Errorf("missing %s while creating", o)
		}
	}
}

func searchparamNormalizeFamily(m map[string]any) string {
	f := m["name"].([]any)[0].(map[string]any)["family"].(string)
	return normalizeForTest(f)
}

func hasObs(all map[string]map[string]any, p map[string]any, fn func(o map[string]any) bool) bool {
	for _, o := range all {
		if o["resourceType"] == "Observation" && refOf(o, "subject") == "Patient/"+p["id"].(string) && fn(o) {
			return true
		}
	}
	return false
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{
		"Observation?nonsense=1", "Observation?date=2020-13-45", "Observation?date=xx2020", "Observation?value-quantity=abc",
		"Observation?value-quantity=1|a", "Observation?_count=-1", "Observation?_count=100000000", "Observation?_sort=nonsense",
		"Observation?subject:Nope.name=x", "Observation?code:below=x", "Observation?_has:Nope:x:y=1",
		"Patient?_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:code=1",
		"Observation?_cursor=AAAA", "Observation?date=ge2020'%20OR%201=1--", "Observation?subject=../../etc", "Observation?_total=maybe",
		"Observation?family=x", "Observation?code:missing=maybe", "Patient?name:not=x", "Observation?_include=Observation:code",
	} {
		st, m := e.do("GET", "/fhir/"+q, "")
		if st != 400 || m["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %v", q, st, m)
		}
	}
	b := e.get("Observation?nonsense=1&code=x", "Prefer", "handling=lenient")
	if b.status != 200 || !b.outcome {
		t.Errorf("lenient: %d %v", b.status, b.raw)
	}
}
