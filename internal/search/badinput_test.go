package search

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Acceptance 4 of the search issue: bad search input gets a 400 with an
// OperationOutcome, never a 5xx, and changes nothing. TestBadInput holds
// the first cases; these tests send a list of injection and malformed
// strings into a parameter of every type and into every control
// parameter, and check the store before and after.

// badValues are injection and malformed strings, sent (URL-encoded, so
// the server sees them as written) as the value of one parameter of each
// type, as a parameter name and as a modifier.
var badValues = []struct{ label, v string }{
	{"sql-or", "' OR 1=1--"},
	{"sql-drop", `"; DROP TABLE idx;--`},
	{"sql-union", "x' UNION SELECT token FROM idx--"},
	{"path", "../../etc/passwd"},
	{"path-encoded", "%2e%2e/%2e%2e/etc"},
	{"nul", "a\x00b"},
	{"control", "\x01\x02\x1b[31m\r\n\t"},
	{"invalid-utf8", "\xff\xfe\xc3("},
	{"100KB", strings.Repeat("a", 100<<10)},
	{"parens", strings.Repeat("(", 2000) + "x" + strings.Repeat(")", 2000)},
	{"1000-commas", strings.Repeat(",", 1000)},
	{"nfd", "Mu\u0308ller"}, // NFD spelling of a fixture family name
	{"fullwidth", "ＳＥＬＥＣＴ"}, // NFKC folds to SELECT
	{"bidi-zero-width", "\u202etxt.exe\u200b\ufeff"},
	{"json", `{"$ne":null}`},
	{"json-array", `[{"resourceType":"Patient"}]`},
	{"fhirpath", "Patient.name.where(family='x').exists()"},
	{"fhirpath-env", "%resource.id | 1"},
	{"gx2020", "gx2020"},
	{"ge", "ge"},
	{"ge-", "ge-"},
	{"feb-30", "2020-02-30"},
	{"unpadded-date", "2020-1-1"},
	{"time-only", "T10:00"},
	{"1e99999", "1e99999"},
	{"NaN", "NaN"},
	{"Infinity", "Infinity"},
	{"hex-float", "0x1p3"},
	{"1|", "1|"},
	{"|", "|"},
	{"$$", "$$"},
	{"a:b:c", "a:b:c"},
	{"backslash", `\`},
	{"empty", ""},
	{"space", " "},
}

// A rule is what FHIR lets a server answer to one bad value.
type rule int

const (
	// must400: the value is malformed for the parameter: 400 with an
	// OperationOutcome.
	must400 rule = iota
	// noMatch: FHIR gives the value a meaning that no stored resource can
	// satisfy (a code, id or uri nothing holds): 200 with no match, or 400
	// if the server refuses it as malformed.
	noMatch
	// searchable: any text is a valid value of the parameter (string
	// search); 200 with exactly the resources the oracle computes.
	searchable
	// either: 200 (any matches) or 400; the value is an absent one.
	either
)

// overLimit values break a limit on the whole query (length, number of
// values) or on its encoding: they get 400 whatever the parameter's type,
// and the OperationOutcome need not name the parameter.
func overLimit(label string) bool {
	return label == "100KB" || label == "invalid-utf8"
}

// emptyAlt values are or contain an empty alternative: FHIR defines no
// empty search value, so they are malformed for every parameter.
func emptyAlt(label string) bool { return label == "empty" || label == "1000-commas" }

// probeKind is one way of placing a bad value in a query.
type probeKind struct {
	label string
	typ   string
	build func(v string) url.Values
	rule  func(label string) rule
	// name is the parameter the OperationOutcome must name ("" when the
	// bad value is itself the name).
	name string
	// oracle, for searchable kinds, gives the expected matches.
	oracle func(v string) []string
}

// valueKind puts the bad value into param (with the other parameters of
// base, if any) under the rule of the parameter's type.
func valueKind(typ, param string, base url.Values, r func(string) rule) probeKind {
	return probeKind{label: typ + "?" + param, typ: typ, name: strings.Split(strings.TrimPrefix(param, "_has:"), ":")[0],
		rule: r, build: func(v string) url.Values {
			q := url.Values{}
			for k, vs := range base {
				q[k] = vs
			}
			q.Add(param, v)
			return q
		}}
}

// Rules by parameter type, written from the R4 search rules.
var (
	// date, number, quantity, composite, _lastUpdated and the control
	// parameters accept only their grammar; none of the bad values fits.
	strict = func(string) rule { return must400 }
	// token, reference, uri, _id: a value is a code, id or uri to compare;
	// any non-empty text is one (ids and codes are opaque here) and none
	// is held by the fixture.
	opaque = func(label string) rule {
		if emptyAlt(label) || overLimit(label) {
			return must400
		}
		return noMatch
	}
	// string: any text is a valid (prefix) search.
	text = func(label string) rule {
		switch {
		case emptyAlt(label) || overLimit(label):
			return must400
		case label == "space":
			return noMatch // only whitespace: an empty value, refused or matching nothing
		}
		return searchable
	}
)

func badKinds(data []map[string]any) []probeKind {
	glucose := url.Values{"code": {"2339-0"}} // matches, so _elements is applied
	hasValue := valueKind("Patient", "_has:Observation:patient:code", nil, opaque)
	hasValue.name = "code"
	kinds := []probeKind{
		valueKind("Patient", "name", nil, text),
		valueKind("Observation", "code", nil, opaque),
		valueKind("Observation", "subject", nil, opaque),
		valueKind("Observation", "date", nil, strict),
		valueKind("RiskAssessment", "probability", nil, strict),
		valueKind("Observation", "value-quantity", nil, strict),
		valueKind("ValueSet", "url", nil, opaque),
		valueKind("Observation", "code-value-quantity", nil, strict),
		valueKind("Observation", "_id", nil, opaque),
		valueKind("Observation", "_lastUpdated", nil, strict),
		valueKind("Observation", "_tag", nil, opaque),
		valueKind("Observation", "_profile", nil, opaque),
		valueKind("Observation", "_security", nil, opaque),
		valueKind("Observation", "_sort", nil, strict),
		valueKind("Observation", "_count", nil, strict),
		valueKind("Observation", "_include", nil, strict),
		valueKind("Patient", "_revinclude", nil, strict),
		hasValue,
		valueKind("Observation", "_elements", glucose, func(label string) rule {
			if label == "empty" {
				return either // an empty _elements is no _elements; refusing it is fine too
			}
			return must400
		}),
		valueKind("Observation", "_summary", glucose, strict),
		valueKind("Observation", "_total", nil, strict),
		// The bad value as a parameter name, as a modifier and as a _has
		// link: unknown names and modifiers are refused (strict handling).
		{label: "Observation?<name>", typ: "Observation", rule: strict,
			build: func(v string) url.Values { return url.Values{v: {"x"}} }},
		{label: "Observation?code:<modifier>", typ: "Observation", name: "code", rule: func(label string) rule {
			if label == "empty" {
				return noMatch // "code:" is code without a modifier
			}
			return must400
		}, build: func(v string) url.Values { return url.Values{"code:" + v: {"x"}} }},
		{label: "Patient?_has:Observation:<ref>:code", typ: "Patient", name: "_has", rule: strict,
			build: func(v string) url.Values { return url.Values{"_has:Observation:" + v + ":code": {"x"}} }},
	}
	kinds[0].oracle = func(v string) []string {
		n := normalizeForTest(v)
		var out []string
		for _, m := range data {
			if m["resourceType"] != "Patient" {
				continue
			}
			for _, nm := range m["name"].([]any) {
				parts := []string{nm.(map[string]any)["family"].(string)}
				for _, g := range nm.(map[string]any)["given"].([]any) {
					parts = append(parts, g.(string))
				}
				if slices.ContainsFunc(parts, func(p string) bool { return strings.HasPrefix(normalizeForTest(p), n) }) {
					out = append(out, "Patient/"+m["id"].(string))
					break
				}
			}
		}
		return sorted(out)
	}
	return kinds
}

// outcome is a decoded answer.
type outcome struct {
	st   int
	body map[string]any
	raw  string
}

// diagnostics joins the OperationOutcome's diagnostics.
func (o outcome) diagnostics() string {
	var out []string
	is, _ := o.body["issue"].([]any)
	for _, i := range is {
		d, _ := i.(map[string]any)["diagnostics"].(string)
		out = append(out, d)
	}
	return strings.Join(out, "; ")
}

// runAll sends the requests from a few goroutines.
func (e *env) runAll(reqs []func() outcome) []outcome {
	out := make([]outcome, len(reqs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = reqs[i]()
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// TestBadSearchValues sends every bad value into every kind, by GET and
// by POST _search, and checks each answer against the kind's rule; the
// store is the same before and after.
func TestBadSearchValues(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	data := fixture()
	e.load(data...)
	// Take the paging key into use first: it is created on the first
	// paged search, legitimately.
	if b := e.get("Observation?_count=1"); b.next == "" {
		t.Fatal("no next link")
	}
	before := e.storeSum(ctx)
	type probe struct {
		kind  probeKind
		label string
		q     url.Values
		post  bool
	}
	var probes []probe
	var reqs []func() outcome
	for _, k := range badKinds(data) {
		for _, bv := range badValues {
			for _, post := range []bool{false, true} {
				p := probe{k, bv.label, k.build(bv.v), post}
				probes = append(probes, p)
				reqs = append(reqs, func() outcome {
					if p.post {
						st, m, raw := e.rawReq("POST", "/fhir/"+k.typ+"/_search", p.q.Encode(), "Content-Type", "application/x-www-form-urlencoded")
						return outcome{st, m, raw}
					}
					st, m, raw := e.rawReq("GET", "/fhir/"+k.typ+"?"+p.q.Encode(), "")
					return outcome{st, m, raw}
				})
			}
		}
	}
	failures := 0
	unnamed := map[string][]string{} // kind -> values whose 400 does not name the parameter
	var example []string
	for i, o := range e.runAll(reqs) {
		p := probes[i]
		how := "GET"
		if p.post {
			how = "POST _search"
		}
		msg, named := judge(p.kind, p.label, p.q, o)
		if msg != "" {
			if failures++; failures <= 80 {
				t.Errorf("%s %s with %s: %s", how, p.kind.label, p.label, msg)
			}
		}
		if !named && !p.post {
			unnamed[p.kind.label] = append(unnamed[p.kind.label], p.label)
			if len(unnamed[p.kind.label]) == 1 {
				example = append(example, fmt.Sprintf("%s with %s: %q", p.kind.label, p.label, o.diagnostics()))
			}
		}
	}
	if failures > 80 {
		t.Errorf("... %d failures in all", failures)
	}
	// One report for the OperationOutcomes that do not say which
	// parameter they refuse (the client cannot tell which one to fix).
	if len(unnamed) > 0 {
		n := 0
		for _, ls := range unnamed {
			n += len(ls)
		}
		sort.Strings(example)
		t.Errorf("%d refusals in %d kinds do not name the parameter, e.g.\n\t%s", n, len(unnamed), strings.Join(example, "\n\t"))
	}
	if after := e.storeSum(ctx); after != before {
		t.Errorf("the store changed under bad searches")
	}
	// The digest sees a change: one more resource.
	e.load(map[string]any{"resourceType": "Observation", "id": "sum-check", "status": "final", "code": map[string]any{"text": "x"}})
	if e.storeSum(ctx) == before {
		t.Errorf("storeSum does not see a new resource")
	}
	t.Logf("%d kinds x %d values x GET/POST = %d bad-value requests", len(badKinds(nil)), len(badValues), len(probes))
}

// judge checks one answer against the rule of its kind and value; it
// returns what is wrong, or "", and whether a refusal names the parameter
// (true for anything else).
func judge(k probeKind, label string, q url.Values, o outcome) (string, bool) {
	named := o.st != 400 || k.name == "" || overLimit(label) || strings.Contains(o.diagnostics(), k.name)
	return judgeStatus(k, label, q, o), named
}

func judgeStatus(k probeKind, label string, q url.Values, o outcome) string {
	if o.st >= 500 {
		return fmt.Sprintf("server error %d: %.200s", o.st, o.raw)
	}
	r := k.rule(label)
	if overLimit(label) || (emptyAlt(label) && r != noMatch && r != either) {
		r = must400
	}
	refused := func() string {
		if o.st != 400 || o.body["resourceType"] != "OperationOutcome" {
			return fmt.Sprintf("%d, want 400 OperationOutcome: %.200s", o.st, o.raw)
		}
		return ""
	}
	if r == must400 {
		return refused()
	}
	if o.st == 400 {
		if r == searchable {
			return fmt.Sprintf("400 for a valid string search: %q", o.diagnostics())
		}
		return refused()
	}
	if o.st != 200 || o.body["resourceType"] != "Bundle" || o.body["type"] != "searchset" {
		return fmt.Sprintf("%d, want 200 searchset or 400: %.200s", o.st, o.raw)
	}
	var got []string
	entries, _ := o.body["entry"].([]any)
	for _, x := range entries {
		en := x.(map[string]any)
		if en["search"].(map[string]any)["mode"] == "match" {
			res := en["resource"].(map[string]any)
			got = append(got, fmt.Sprint(res["resourceType"], "/", res["id"]))
		}
	}
	var want []string
	if r == either {
		return ""
	}
	if r == searchable {
		want = k.oracle(q.Get(k.name))
		if n := len(want); n > 50 { // the first page only
			want = nil
			if len(got) != 50 {
				return fmt.Sprintf("%d matches on the first page, want 50 of %d", len(got), n)
			}
			return ""
		}
	}
	if !slices.Equal(sorted(got), want) {
		return fmt.Sprintf("matches %v, want %v", got, want)
	}
	return ""
}
