package search

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
)

// Acceptance 6 of the search issue: /metadata lists every supported search
// parameter per resource type, each with its R4 type and official
// definition, and every listed parameter really answers; a parameter not
// listed is refused (400).

// capParam is one CapabilityStatement.rest.resource.searchParam.
type capParam struct{ Name, Type, Definition string }

// capability reads GET /fhir/metadata and returns the listed search
// parameters by resource type.
func (e *env) capability() map[string][]capParam {
	e.t.Helper()
	st, cs := e.do("GET", "/fhir/metadata", "")
	if st != 200 || cs["resourceType"] != "CapabilityStatement" {
		e.t.Fatalf("GET /metadata: %d %v", st, cs["resourceType"])
	}
	raw, _ := json.Marshal(cs["rest"])
	var rest []struct {
		Resource []struct {
			Type        string
			SearchParam []capParam
		}
	}
	if err := json.Unmarshal(raw, &rest); err != nil || len(rest) != 1 {
		e.t.Fatalf("CapabilityStatement.rest: %v (%d entries)", err, len(rest))
	}
	out := map[string][]capParam{}
	for _, r := range rest[0].Resource {
		if _, dup := out[r.Type]; dup {
			e.t.Errorf("/metadata lists %s twice", r.Type)
		}
		out[r.Type] = r.SearchParam
	}
	return out
}

// TestMetadataListsOfficialParams: every resource type is listed; every
// listed parameter is an official R4 SearchParameter of that type with the
// same type and its canonical URL (the core, non-experimental definition
// when there is one); and every official parameter with a FHIRPath
// expression (the ones the server can index) is listed, except special
// ones, which the server does not support.
func TestMetadataListsOfficialParams(t *testing.T) {
	defs := officialDefs(t)
	e := newEnv(t)
	capab := e.capability()
	types := map[string]bool{}
	for typ := range capab {
		types[typ] = true // also types with only the Resource parameters
	}
	for _, d := range defs {
		for _, b := range d.Base {
			if b != "Resource" && b != "DomainResource" {
				types[b] = true
			}
		}
	}
	n := 0
	for typ := range types {
		ps, ok := capab[typ]
		if !ok {
			t.Errorf("/metadata does not list %s", typ)
			continue
		}
		listed := map[string]bool{}
		for _, p := range ps {
			n++
			if listed[p.Name] {
				t.Errorf("%s: %s listed twice", typ, p.Name)
			}
			listed[p.Name] = true
			if !strings.HasPrefix(p.Definition, "http://hl7.org/fhir/SearchParameter/") {
				t.Errorf("%s.%s: definition %q is not an official R4 SearchParameter", typ, p.Name, p.Definition)
			}
			ds := defsFor(defs, typ, p.Name)
			var match *r4Def
			core := false
			for i, d := range ds {
				core = core || (!d.Experimental && !strings.Contains(d.URL, "-extensions-"))
				if d.URL == p.Definition {
					match = &ds[i]
				}
			}
			switch {
			case match == nil:
				t.Errorf("%s.%s: definition %q is not an R4 SearchParameter for %s", typ, p.Name, p.Definition, typ)
			case match.Type != p.Type:
				t.Errorf("%s.%s: type %q, the R4 definition says %q", typ, p.Name, p.Type, match.Type)
			case core && (match.Experimental || strings.Contains(match.URL, "-extensions-")):
				t.Errorf("%s.%s: lists the extension definition %s, not the core one", typ, p.Name, p.Definition)
			}
		}
		if typ == "AuditEvent" {
			continue // served from the audit log with its own parameter set (audit_search.go)
		}
		for _, d := range defs {
			applies := len(defsFor([]r4Def{d}, typ, d.Code)) > 0
			if applies && d.Expression != "" && d.Type != "special" && !listed[d.Code] {
				t.Errorf("%s: the R4 parameter %s (%s) is not listed", typ, d.Code, d.URL)
			}
		}
	}
	if n < 2000 {
		t.Errorf("only %d parameters listed over %d types", n, len(types))
	}
	// _text and _content are not offered (they would need a plaintext
	// word index); the issue asks /metadata to say why not.
	_, cs := e.do("GET", "/fhir/metadata", "")
	raw, _ := json.Marshal(cs)
	for _, p := range []string{"_text", "_content"} {
		if !strings.Contains(string(raw), p) {
			t.Errorf("/metadata does not say why %s is not supported", p)
		}
	}
	t.Logf("%d types, %d listed parameters checked against %d R4 definitions", len(types), n, len(defs))
}

// rawReq sends one request as the administrator without touching t (safe
// from several goroutines) and returns the status and decoded JSON body.
func (e *env) rawReq(method, target, body string, hdr ...string) (int, map[string]any, string) {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r = r.WithContext(policy.WithPrincipal(r.Context(), admin))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out, w.Body.String()
}

// sampleValue is a well-formed search value for a parameter type: what a
// client may send for it by the R4 rules. targets are a reference's
// allowed target types.
func sampleValues(typ string, targets []string) []string {
	switch typ {
	case "token":
		return []string{"x", "http://example.org/sys|x", "|x", "http://example.org/sys|"}
	case "string":
		return []string{"ab"}
	case "date":
		return []string{"ge2020-01-01", "2021"}
	case "number":
		return []string{"1", "gt1.5"}
	case "quantity":
		return []string{"1", "le1.5|http://unitsofmeasure.org|mg"}
	case "reference":
		if len(targets) > 0 {
			return []string{targets[0] + "/x", "x"}
		}
		return []string{"x", "http://example.org/fhir/Patient/x"}
	case "uri":
		return []string{"http://example.org/x"}
	}
	return nil
}

// compositeValue builds a$b[$c] from the components' types.
func compositeValue(defs []r4Def, d r4Def) string {
	var parts []string
	for _, c := range d.Component {
		for _, cd := range defs {
			if cd.URL == c.Definition {
				v := sampleValues(cd.Type, cd.Target)[0]
				if cd.Type == "date" {
					v = "2020-01-01"
				}
				parts = append(parts, v)
				break
			}
		}
	}
	return strings.Join(parts, "$")
}

// auditValues are well-formed values of the AuditEvent parameters, which
// are answered from the audit log and accept that log's vocabulary.
var auditValues = map[string][]string{
	"patient": {"Patient/x", "x"}, "agent": {"someone"}, "date": {"ge2020-01-01", "2021"},
	"action": {"R", "C,U"}, "outcome": {"0", "8"}, "subtype": {"read", "http://hl7.org/fhir/restful-interaction|search-type"},
	"entity": {"Patient/x"},
}

// TestMetadataEveryParamAnswers sends, for every resource type and every
// parameter /metadata lists, name:missing=true, name:missing=false and
// well-formed values of its declared type (composites built from their
// components' types); each must answer 200 with a searchset Bundle. A
// parameter that some other type lists but this one does not (and the
// special R4 parameters, which are not supported) must get a 400
// OperationOutcome.
func TestMetadataEveryParamAnswers(t *testing.T) {
	defs := officialDefs(t)
	e := newEnv(t)
	e.load(fixture()[:120]...)
	capab := e.capability()
	type probe struct{ typ, name, query string }
	var ok, refused []probe
	allNames := map[string]bool{}
	for typ, ps := range capab {
		for _, p := range ps {
			allNames[p.Name] = true
			var vals []string
			if typ == "AuditEvent" {
				vals = auditValues[p.Name]
				if vals == nil {
					t.Errorf("AuditEvent.%s: listed, but this test knows no value for it", p.Name)
				}
			} else {
				// :missing is a modifier of every parameter type (not the
				// audit log's, which takes none).
				vals = []string{}
				ok = append(ok, probe{typ, p.Name, qs(p.Name+":missing", "true")}, probe{typ, p.Name, qs(p.Name+":missing", "false")})
				var d *r4Def
				for i, x := range defsFor(defs, typ, p.Name) {
					if x.URL == p.Definition {
						d = &defsFor(defs, typ, p.Name)[i]
					}
				}
				switch {
				case p.Type == "composite" && d != nil:
					vals = append(vals, compositeValue(defs, *d))
				case d != nil:
					vals = sampleValues(p.Type, d.Target)
				default:
					vals = sampleValues(p.Type, nil)
				}
				if len(vals) == 0 || vals[0] == "" {
					t.Errorf("%s.%s (%s): no sample value", typ, p.Name, p.Type)
				}
			}
			for _, v := range vals {
				ok = append(ok, probe{typ, p.Name, qs(p.Name, v)})
			}
		}
	}
	names := slices.Sorted(maps.Keys(allNames))
	parsed := 0
	for typ, ps := range capab {
		listed := map[string]bool{}
		for _, p := range ps {
			listed[p.Name] = true
		}
		// Every name listed elsewhere is unknown here: test a spread of
		// them over HTTP, plus the R4 parameters that are never listed.
		var un []string
		for _, n := range names {
			if !listed[n] {
				un = append(un, n)
			}
		}
		for i := 0; i < len(un); i += max(1, len(un)/12) {
			refused = append(refused, probe{typ, un[i], qs(un[i], "x")})
		}
		// And all of them at the parser, which makes that decision.
		if typ != "AuditEvent" {
			for _, n := range un {
				_, err := e.eng.parse(context.Background(), typ, url.Values{n: {"x"}}, parseOpts{base: testBase})
				if fe, ok := err.(*fhirapi.Error); !ok || fe.Status != 400 {
					t.Errorf("%s?%s=x (not listed): parsed with %v, want a 400", typ, n, err)
				}
				parsed++
			}
		}
		for _, n := range []string{"_text", "_content", "_list", "_query", "_filter", "_type", "near", "no-such-param"} {
			if !listed[n] {
				refused = append(refused, probe{typ, n, qs(n, "x")})
			}
		}
	}
	type result struct {
		p    probe
		st   int
		body map[string]any
		raw  string
	}
	run := func(ps []probe) []result {
		out := make([]result, len(ps))
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					st, m, raw := e.rawReq("GET", "/fhir/"+ps[i].typ+"?"+ps[i].query, "")
					out[i] = result{ps[i], st, m, raw}
				}
			}()
		}
		for i := range ps {
			next <- i
		}
		close(next)
		wg.Wait()
		return out
	}
	// Failures are reported once per parameter and query shape, with the
	// number of resource types where they occur.
	type failure struct {
		first string
		types int
	}
	fails := map[string]*failure{}
	var order []string
	fail := func(r result, want string) {
		shape := r.p.name + " " + strings.SplitN(r.p.query, "=", 2)[0] + " " + want
		f := fails[shape]
		if f == nil {
			f = &failure{first: fmt.Sprintf("GET %s?%s: %d, want %s: %.200s", r.p.typ, r.p.query, r.st, want, r.raw)}
			fails[shape] = f
			order = append(order, shape)
		}
		f.types++
	}
	// The audit log's searches first: they read the log, which every
	// request here lengthens by one leaf.
	slices.SortStableFunc(ok, func(a, b probe) int {
		return cmpBool(b.typ == "AuditEvent", a.typ == "AuditEvent")
	})
	for _, r := range run(ok) {
		if r.st != 200 || r.body["resourceType"] != "Bundle" || r.body["type"] != "searchset" {
			fail(r, "200 searchset")
		}
	}
	for _, r := range run(refused) {
		if r.st != 400 || r.body["resourceType"] != "OperationOutcome" {
			fail(r, "400 OperationOutcome (not listed)")
		}
	}
	for _, shape := range order {
		t.Errorf("%s (%d such queries)", fails[shape].first, fails[shape].types)
	}
	t.Logf("%d types; %d listed-parameter queries answered, %d unlisted-parameter queries refused (and %d at the parser)", len(capab), len(ok), len(refused), parsed)
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
