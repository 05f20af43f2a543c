package search

import (
	"bytes"
	"encoding/json"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/phivault/phivault/internal/corpus"
	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// checkDateValues holds the date fast path to Extract for the resource
// raw: dateValues over the whole resource, and over only the members
// reachable computes for its date parameters, give Extract's date values.
func checkDateValues(t *testing.T, e *env, raw []byte) {
	t.Helper()
	m, err := parseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	typ, _ := m["resourceType"].(string)
	all, err := e.eng.params().Extract(m)
	if err != nil {
		t.Fatal(err)
	}
	var want []searchparam.Value
	var params []string
	for _, v := range all {
		if v.Type == searchparam.Date {
			want = append(want, v)
		}
	}
	for _, p := range e.eng.params().Params(typ) {
		if p.Type == searchparam.Date {
			params = append(params, p.Code)
		}
	}
	part, err := parseMembers(raw, e.eng.reachable(typ, params))
	if err != nil {
		t.Fatal(err)
	}
	sortVals := func(vs []searchparam.Value) {
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].Param < vs[j].Param })
	}
	sortVals(want)
	for name, res := range map[string]map[string]any{"whole": m, "reachable members": part} {
		got, err := e.eng.dateValues(typ, params, res)
		if err != nil {
			t.Fatal(err)
		}
		sortVals(got)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%s/%v, %s (-Extract +dateValues):\n%s", typ, m["id"], name, diff)
		}
	}
}

// TestDateValuesExamples runs checkDateValues over every resource of the
// R4 examples package.
func TestDateValuesExamples(t *testing.T) {
	e := newEnv(t)
	n := 0
	corpus.Examples(t, func(name string, data []byte) bool {
		var head struct{ ResourceType string }
		if json.Unmarshal(data, &head) != nil || head.ResourceType == "" {
			return true
		}
		checkDateValues(t, e, data)
		n++
		return true
	})
	if n < 2000 {
		t.Errorf("only %d examples checked", n)
	}
}

// TestParseMembers: the members kept decode as parseJSON decodes them; the
// skipped ones are absent; text that is not a JSON object is refused.
func TestParseMembers(t *testing.T) {
	raw := []byte(`{"resourceType":"Observation","effectiveDateTime":"2020-01-02","_effectiveDateTime":{"id":"x"},` +
		`"valueQuantity":{"value":1.50},"note":[{"text":"\\u00e9"}],"effective":2}`)
	m, err := parseMembers(raw, func(k string) bool { return k != "note" && k != "valueQuantity" })
	if err != nil {
		t.Fatal(err)
	}
	full, _ := parseJSON(raw)
	delete(full, "note")
	delete(full, "valueQuantity")
	if diff := cmp.Diff(full, m); diff != "" {
		t.Errorf("(-parseJSON +parseMembers):\n%s", diff)
	}
	for _, bad := range []string{`[]`, `{"a":1`, `{"a":1} x`, `{"a":[1,]}`, `{"note":[1,]}`, ``, `"s"`} {
		if _, err := parseMembers([]byte(bad), func(k string) bool { return k == "a" }); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseMembers holds parseMembers to encoding/json: it accepts exactly
// the JSON objects encoding/json accepts, and decodes each kept member as
// encoding/json (with UseNumber) decodes it.
func FuzzParseMembers(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[{"c":"d"}],"effectiveDateTime":"2020"}`, `{"a":"\u00e9\ud800","a":2}`,
		`{}`, `[]`, `{"a":1}x`, `{"b":{"a":[1,]}}`, `{"a":-0.5e+3,"b":null,"a":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keep := func(k string) bool { return k != "b" }
		got, err := parseMembers(b, keep)
		var want map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		valid := json.Valid(b) && dec.Decode(&want) == nil && want != nil
		if !valid {
			if err == nil {
				t.Fatalf("%q: accepted, encoding/json refuses it as an object", b)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		delete(want, "b")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%q (-encoding/json +parseMembers):\n%s", b, diff)
		}
	})
}
