package main

import (
	"fmt"
	"sort"
	"strings"
)

const fhirCT = "application/fhir+json"

// corpus returns every bad request: generated families first (wrong types,
// unknown elements, bad primitives, truncations), then hand-written cases
// for the special ones.
func (e *badEnv) corpus() []badCase {
	var cs []badCase
	cs = append(cs, e.wrongTypeCases()...)
	cs = append(cs, e.unknownElementCases()...)
	cs = append(cs, e.primitiveCases()...)
	cs = append(cs, e.truncationCases()...)
	cs = append(cs, e.fileCases()...)
	cs = append(cs, e.envelopeCases()...)
	cs = append(cs, e.bundleCases()...)
	cs = append(cs, e.headerCases()...)
	cs = append(cs, e.pathCases()...)
	cs = append(cs, e.queryCases()...)
	cs = append(cs, e.patchCases()...)
	return cs
}

// put is a PUT of res to its own URL.
func (e *badEnv) put(name, key string, res any, want int) badCase {
	return badCase{name: name, method: "PUT", path: "/fhir/" + key, ct: fhirCT, body: e.compact(res), want: want}
}

func (e *badEnv) sortedKeys() []string {
	keys := make([]string, 0, len(e.bodies))
	for k := range e.bodies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Status scheme: a body that is not JSON (or not a JSON object) is 400; JSON
// that is not a valid resource of the URL's type (wrong JSON types, unknown
// elements, bad formats, broken invariants) is 422 with an issue naming the
// element; a resource of another type than the URL's, or another id, is 400.

// wrongTypeCases replaces each element of each fixture resource with a
// value of the wrong JSON type: a string for an object or array, a number
// for a string, a string for a boolean or number, an array for a single
// object and a bare object for an array.
func (e *badEnv) wrongTypeCases() []badCase {
	var cs []badCase
	for _, key := range e.sortedKeys() {
		res := e.clone(key)
		elems := make([]string, 0, len(res))
		for k := range res {
			if k != "resourceType" && k != "id" {
				elems = append(elems, k)
			}
		}
		sort.Strings(elems)
		for _, k := range elems {
			var wrong []any
			switch v := res[k].(type) {
			case string:
				wrong = []any{42, true, []any{v}, map[string]any{"value": v}}
			case bool:
				wrong = []any{"true", 1}
			case float64:
				wrong = []any{fmt.Sprint(v)}
			case []any:
				wrong = []any{"x", v[0]}
			case map[string]any:
				wrong = []any{"x", []any{v}}
			}
			for i, w := range wrong {
				m := e.clone(key)
				m[k] = w
				cs = append(cs, e.put(fmt.Sprintf("wrong type %s.%s #%d", key, k, i), key, m, 422))
			}
		}
	}
	return cs
}

// unknownElementCases adds elements the type does not have, at the top
// and inside the first object of each array element.
func (e *badEnv) unknownElementCases() []badCase {
	var cs []badCase
	for _, key := range e.sortedKeys() {
		m := e.clone(key)
		m["fooBar"] = "x"
		cs = append(cs, e.put("unknown element "+key+".fooBar", key, m, 422))
		m = e.clone(key)
		m["resourcetype"] = m["resourceType"]
		cs = append(cs, e.put("unknown element "+key+".resourcetype", key, m, 422))
		res := e.clone(key)
		for k, v := range res {
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				continue
			}
			if _, ok := arr[0].(map[string]any); !ok {
				continue
			}
			m := e.clone(key)
			m[k].([]any)[0].(map[string]any)["notAnElement"] = 1
			cs = append(cs, e.put(fmt.Sprintf("unknown element %s.%s[0].notAnElement", key, k), key, m, 422))
		}
	}
	return cs
}

// primitiveCases give elements values of the right JSON type but a bad
// FHIR format.
func (e *badEnv) primitiveCases() []badCase {
	pk, ok := "Patient/"+e.patient, "Observation/"+e.obs
	type mut struct {
		key, elem string
		vals      []any
	}
	muts := []mut{
		{pk, "birthDate", []any{"2020-13-01", "20200101", "2020-02-30", "", " 2020-01-01", "2020-01-01T00:00:00Z", "01/02/2020", "2020-1-1", "Ｘ"}},
		{pk, "gender", []any{"MALE", " male", "male ", "", "unknownish", "m\u0000"}},
		{pk, "active", []any{"true", "false", 0, nil}},
		{pk, "deceasedDateTime", []any{"yesterday", "2020-01-01T25:00:00Z", "2020-01-01T10:00"}},
		{pk, "multipleBirthInteger", []any{1.5, "2", 1e40}},
		{pk, "language", []any{"", " en"}},
		{pk, "implicitRules", []any{"", "has space"}},
		{ok, "status", []any{"done", "", "Final", " final"}},
		{ok, "effectiveDateTime", []any{"2020-02-30T00:00:00Z", "now", ""}},
		{ok, "issued", []any{"2020-01-01", "2020-01-01T00:00:00"}},
	}
	var cs []badCase
	for _, mu := range muts {
		for i, v := range mu.vals {
			m := e.clone(mu.key)
			m[mu.elem] = v
			cs = append(cs, e.put(fmt.Sprintf("bad primitive %s.%s #%d", mu.key, mu.elem, i), mu.key, m, 422))
		}
	}
	// Nested primitives.
	for i, v := range []any{"1.0", "", true, "NaN"} {
		m := e.clone(ok)
		m["valueQuantity"] = map[string]any{"value": v, "unit": "mg"}
		delete(m, "valueCodeableConcept")
		delete(m, "component")
		cs = append(cs, e.put(fmt.Sprintf("bad primitive %s.valueQuantity.value #%d", ok, i), ok, m, 422))
	}
	for i, ref := range []string{"Patient/", "Patient/a b", "Patient/../x", "://", "Patient/" + strings.Repeat("x", 65)} {
		m := e.clone(ok)
		m["subject"] = map[string]any{"reference": ref}
		cs = append(cs, e.put(fmt.Sprintf("bad reference %s.subject #%d", ok, i), ok, m, 422))
	}
	return cs
}

// truncationCases cut a valid body at many points.
func (e *badEnv) truncationCases() []badCase {
	b := e.compact(e.clone("Patient/" + e.patient))
	var cs []badCase
	for i := 1; i <= 20; i++ {
		n := len(b) * i / 21
		cs = append(cs, badCase{name: fmt.Sprintf("truncated at %d of %d", n, len(b)), method: "PUT", path: "/fhir/Patient/" + e.patient,
			ct: fhirCT, body: b[:n], want: 400})
	}
	return cs
}
