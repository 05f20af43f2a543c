package search

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestBadSearchShapes sends queries whose shape is wrong or absurd (the
// values may be fine): _count out of range, chains into unknown types and
// 5 levels deep, _has nested 10 levels, _sort on 50 keys, 10,000
// parameters, malformed POST _search bodies and content types. Each must
// get the status its rule states (a 4xx always carries an
// OperationOutcome), never a 5xx, and the store must not change.
func TestBadSearchShapes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	data := fixture()
	e.load(data...)
	all := byID(data)
	if b := e.get("Observation?_count=1"); b.next == "" {
		t.Fatal("no next link") // takes the paging key into use
	}
	before := e.storeSum(ctx)

	repeat := func(n int, f func(i int) string, sep string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, sep)
	}
	nestedHas := func(levels int) string {
		return "Patient?" + strings.Repeat("_has:Observation:patient:", levels) + "code=2339-0"
	}
	obsParams := []string{"date", "code", "status", "category", "subject", "encounter", "value-quantity", "_id", "_lastUpdated", "performer"}
	// Observations whose encounter's patient is managed by Clinic B (org1):
	// the oracle of the 3-level chain.
	viaClinicB := func() []string {
		var out []string
		for k, m := range all {
			if m["resourceType"] != "Observation" {
				continue
			}
			if enc := all[refOf(m, "encounter")]; enc != nil && refOf(all[refOf(enc, "subject")], "managingOrganization") == "Organization/org1" {
				out = append(out, k)
			}
		}
		return sorted(out)
	}()

	type tc struct {
		why     string
		method  string // GET unless set
		path    string // after /fhir/
		body    string
		hdr     []string
		want    []int    // allowed statuses
		matches []string // for a 200: the expected matches (all pages), when not nil
		zero    bool     // for a 200: no match
	}
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	cases := []tc{
		// _count: FHIR leaves the upper bound to the server; phivault takes 0..1000.
		{why: "_count=0 is a count only", path: "Observation?code=2339-0&_count=0", want: []int{200}, zero: true},
		{why: "negative _count", path: "Observation?_count=-1", want: []int{400}},
		{why: "_count of 10^12", path: "Observation?_count=1000000000000", want: []int{400}},
		{why: "_count overflowing int64", path: "Observation?_count=99999999999999999999999", want: []int{400}},
		{why: "_count not a number", path: "Observation?_count=abc", want: []int{400}},
		{why: "_count a decimal", path: "Observation?_count=1.5", want: []int{400}},
		{why: "_count empty", path: "Observation?_count=", want: []int{400}},
		{why: "_count with a modifier", path: "Observation?_count:exact=5", want: []int{400}},
		// Chains: the target type must be a resource type; the chained
		// parameter must be a reference; the inner parameter must exist.
		{why: "chain into an unknown type", path: "Observation?subject:Nope.name=x", want: []int{400}},
		{why: "chain into a lower-case type", path: "Observation?subject:patient.name=x", want: []int{400}},
		{why: "chain with an injected type", path: "Observation?" + qs("subject:Patient' OR 1=1--.name", "x"), want: []int{400}},
		// A type that is no target of Observation.subject: nothing can
		// match; refusing it is as good.
		{why: "chain into a type subject cannot reference", path: "Observation?subject:Organization.name=clinic", want: []int{200, 400}, zero: true},
		{why: "chain through a token parameter", path: "Observation?code.name=x", want: []int{400}},
		{why: "chain to an unknown inner parameter", path: "Observation?patient.nope=x", want: []int{400}},
		{why: "chain with an empty inner parameter", path: "Observation?subject.=x", want: []int{400}},
		{why: "chain with no parameter", path: "Observation?.name=x", want: []int{400}},
		{why: "chain of dots", path: "Observation?" + qs(strings.Repeat(".", 50), "x"), want: []int{400}},
		{why: "chain 3 levels deep (allowed)", path: "Observation?encounter:Encounter.subject:Patient.organization:Organization.name=clinic b",
			want: []int{200}, matches: viaClinicB},
		{why: "chain 4 levels deep", path: "Observation?encounter:Encounter.subject:Patient.organization:Organization.partof:Organization.name=x", want: []int{400}},
		{why: "chain 5 levels deep", path: "Observation?encounter:Encounter.subject:Patient.organization:Organization.partof:Organization.partof:Organization.name=x", want: []int{400}},
		{why: "chain 40 levels deep", path: "Organization?" + strings.Repeat("partof:Organization.", 40) + "name=x", want: []int{400}},
		// _has.
		{why: "_has nested 3 levels (allowed)", path: nestedHas(3), want: []int{200}},
		{why: "_has nested 4 levels", path: nestedHas(4), want: []int{400}},
		{why: "_has nested 10 levels", path: nestedHas(10), want: []int{400}},
		{why: "_has nested 200 levels", path: nestedHas(200), want: []int{400}},
		{why: "_has without parts", path: "Patient?_has=x", want: []int{400}},
		{why: "_has without a parameter", path: "Patient?_has:Observation:patient=x", want: []int{400}},
		{why: "_has with empty parts", path: "Patient?_has:::=x", want: []int{400}},
		{why: "_has from an unknown type", path: "Patient?_has:Nope:patient:code=x", want: []int{400}},
		{why: "_has through a token parameter", path: "Patient?_has:Observation:code:code=x", want: []int{400}},
		{why: "_has with an unknown inner parameter", path: "Patient?_has:Observation:patient:nope=x", want: []int{400}},
		{why: "_has with a bad inner date", path: "Patient?_has:Observation:patient:date=gx2020", want: []int{400}},
		// _sort.
		{why: "_sort on 50 valid keys", path: "Observation?_sort=" + repeat(50, func(i int) string { return obsParams[i%len(obsParams)] }, ","), want: []int{400}},
		{why: "_sort on 50 unknown keys", path: "Observation?_sort=" + repeat(50, func(i int) string { return fmt.Sprintf("k%d", i) }, ","), want: []int{400}},
		{why: "_sort on 5 keys (allowed)", path: "Observation?_sort=-date,code,status,_id,subject&_count=5", want: []int{200}},
		{why: "_sort by a lone minus", path: "Observation?_sort=-", want: []int{400}},
		{why: "_sort by two minuses", path: "Observation?_sort=--date", want: []int{400}},
		{why: "_sort by a composite", path: "Observation?_sort=code-value-quantity", want: []int{400}},
		{why: "_sort by a chain", path: "Observation?_sort=subject.name", want: []int{400}},
		{why: "_sort with a modifier", path: "Observation?_sort:desc=date", want: []int{400}},
		// 10,000 parameters in one query.
		{why: "10,000 repeats of one parameter", path: "Observation?" + repeat(10000, func(int) string { return "code=x" }, "&"), want: []int{400}},
		{why: "10,000 distinct unknown parameters", path: "Observation?" + repeat(10000, func(i int) string { return fmt.Sprintf("p%d=x", i) }, "&"), want: []int{400}},
		{why: "10,000 distinct unknown parameters, lenient", path: "Observation?" + repeat(10000, func(i int) string { return fmt.Sprintf("p%d=x", i) }, "&"),
			hdr: []string{"Prefer", "handling=lenient"}, want: []int{400}},
		{why: "10,000 OR alternatives", path: "Observation?_id=" + repeat(10000, func(i int) string { return fmt.Sprintf("i%d", i) }, ","), want: []int{400}},
		{why: "2,000 OR alternatives (short enough)", path: "Observation?code=" + repeat(2000, func(i int) string { return fmt.Sprint(i) }, ","), want: []int{200, 400}, zero: true},
		{why: "100 _include values", path: "Observation?" + repeat(100, func(int) string { return "_include=Observation:subject" }, "&"), want: []int{400}},
		// Lenient handling ignores unknown parameters, not malformed values.
		{why: "lenient with a malformed date", path: "Observation?date=gx2020", hdr: []string{"Prefer", "handling=lenient"}, want: []int{400}},
		{why: "lenient with a bad _count", path: "Observation?_count=-5&nope=1", hdr: []string{"Prefer", "handling=lenient"}, want: []int{400}},
		// _include / _revinclude.
		{why: "_include into an unknown target", path: "Observation?_include=Observation:subject:Nope", want: []int{400}},
		{why: "_include with the STU3 :recurse", path: "Observation?_include:recurse=Observation:subject", want: []int{400}},
		{why: "_revinclude=*", path: "Patient?_revinclude=*", want: []int{400}},
		{why: "_include of a string parameter", path: "Patient?_include=Patient:name", want: []int{400}},
		// A malformed _elements is malformed whatever the data: refused
		// also when nothing matches (the answer must not depend on the data).
		{why: "_elements naming no element, no match", path: "Observation?code=no-such-code&_elements=nosuchelement", want: []int{400}},
		{why: "_elements naming no element, matches", path: "Observation?code=2339-0&_elements=nosuchelement", want: []int{400}},
		// Cursors.
		{why: "forged _cursor", path: "Observation?_cursor=" + url.QueryEscape(strings.Repeat("A", 200)), want: []int{400}},
		{why: "_cursor of invalid base64", path: "Observation?_cursor=%25%25%25", want: []int{400}},
		// Unknown types.
		{why: "search an unknown type", path: "Nope?name=x", want: []int{404}},
		{why: "search a type with an injected name", path: url.PathEscape("Patient' OR 1=1--") + "?name=x", want: []int{404}},
		// POST _search bodies and content types.
		{why: "POST a malformed form body", method: "POST", path: "Observation/_search", body: "%zz=&&==", hdr: form, want: []int{400}},
		{why: "POST a truncated escape", method: "POST", path: "Observation/_search", body: "code=%", hdr: form, want: []int{400}},
		{why: "POST invalid UTF-8", method: "POST", path: "Observation/_search", body: "code=%FF%FE", hdr: form, want: []int{400}},
		{why: "POST a bad value", method: "POST", path: "Observation/_search", body: "date=ge-", hdr: form, want: []int{400}},
		{why: "POST a JSON body as a form", method: "POST", path: "Observation/_search", body: `{"code":"2339-0"}`, hdr: form, want: []int{400}},
		{why: "POST JSON", method: "POST", path: "Observation/_search", body: `{"code":"2339-0"}`, hdr: []string{"Content-Type", "application/json"}, want: []int{415}},
		{why: "POST without a content type", method: "POST", path: "Observation/_search", body: "code=2339-0", want: []int{415}},
		{why: "POST text/plain", method: "POST", path: "Observation/_search", body: "code=2339-0", hdr: []string{"Content-Type", "text/plain"}, want: []int{415}},
		{why: "POST a form in Latin-1", method: "POST", path: "Observation/_search", body: "code=2339-0", hdr: []string{"Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1"}, want: []int{415}},
		{why: "POST a garbled content type", method: "POST", path: "Observation/_search", body: "code=2339-0", hdr: []string{"Content-Type", ";;;=="}, want: []int{415}},
		{why: "POST 10,000 parameters", method: "POST", path: "Observation/_search", body: repeat(10000, func(int) string { return "code=x" }, "&"), hdr: form, want: []int{400}},
		{why: "POST a body of 4 MB", method: "POST", path: "Observation/_search", body: "code=" + strings.Repeat("x", 4<<20), hdr: form, want: []int{400, 413}},
		{why: "POST _search with a good body (allowed)", method: "POST", path: "Observation/_search", body: "code=2339-0&_count=3", hdr: form, want: []int{200}},
	}
	for _, c := range cases {
		method := c.method
		if method == "" {
			method = "GET"
		}
		st, m, raw := e.rawReq(method, "/fhir/"+strings.ReplaceAll(c.path, " ", "%20"), c.body, c.hdr...)
		short := c.path
		if len(short) > 120 {
			short = short[:120] + "..."
		}
		if len(c.want) > 1 {
			t.Logf("%s: %d (allowed %v)", c.why, st, c.want)
		}
		switch {
		case st >= 500:
			t.Errorf("%s (%s %s): server error %d: %.300s", c.why, method, short, st, raw)
			continue
		case !slices.Contains(c.want, st):
			t.Errorf("%s (%s %s): %d, want one of %v: %.300s", c.why, method, short, st, c.want, raw)
			continue
		case st >= 400:
			if m["resourceType"] != "OperationOutcome" {
				t.Errorf("%s: %d without an OperationOutcome: %.200s", c.why, st, raw)
			}
			continue
		}
		b := e.decode(st, m)
		if m["resourceType"] != "Bundle" || m["type"] != "searchset" {
			t.Errorf("%s: 200 but not a searchset: %.200s", c.why, raw)
		}
		if c.zero && len(b.matches) != 0 {
			t.Errorf("%s: %d matches, want none", c.why, len(b.matches))
		}
		if c.matches != nil {
			got := sorted(e.walk(c.path))
			if !slices.Equal(got, c.matches) {
				t.Errorf("%s: matches %v, want %v", c.why, got, c.matches)
			}
		}
	}
	if len(viaClinicB) == 0 {
		t.Error("the 3-level chain oracle selects nothing; the fixture changed")
	}
	if after := e.storeSum(ctx); after != before {
		t.Error("the store changed under bad searches")
	}
	t.Logf("%d shape cases", len(cases))
}
