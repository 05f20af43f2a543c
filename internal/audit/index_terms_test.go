package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// termsRef is the reference for termsScan: decode into map[string]any
// (exact keys, the last duplicate wins) and walk it, taking nothing from
// a field of an unexpected type.
func termsRef(leaf []byte) (leafTerms, bool) {
	var m map[string]any
	if json.Unmarshal(leaf, &m) != nil || m == nil {
		return leafTerms{}, false
	}
	obj := func(v any, k string) any {
		o, _ := v.(map[string]any)
		return o[k]
	}
	var t leafTerms
	rec, _ := m["recorded"].(string)
	t.time = parseRecorded(rec)
	agents, _ := m["agent"].([]any)
	for _, a := range agents {
		id := obj(obj(a, "who"), "identifier")
		sys, _ := obj(id, "system").(string)
		val, _ := obj(id, "value").(string)
		if sys == "urn:phivault:user" && val != "" && len(val) <= maxIndexedTerm {
			t.agent = val
			break
		}
	}
	ents, _ := m["entity"].([]any)
	for _, e := range ents {
		ref, _ := obj(obj(e, "what"), "reference").(string)
		typ, _ := obj(obj(e, "type"), "code").(string)
		role, _ := obj(obj(e, "role"), "code").(string)
		if typ == "1" && role == "1" && len(ref) > len("Patient/") && ref[:len("Patient/")] == "Patient/" {
			t.patients = addPatient(t.patients, ref[len("Patient/"):])
		}
	}
	return t, true
}

var termsCmp = cmp.Options{cmp.AllowUnexported(leafTerms{}), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}

// TestTermsScan: the scanner reads the terms the reference does, from
// real leaves and from odd but well-formed ones, and refuses what is not
// a JSON object.
func TestTermsScan(t *testing.T) {
	for i := range 2000 {
		e := testEvent(i)
		switch i % 5 {
		case 1:
			e.Patients = append(e.Patients, "p\"quoted\\", e.Patients[0]) // escapes; a duplicate
		case 2:
			e.UserID = "ü-\u2028-<user>&"
		case 3:
			e.Patients = nil
		}
		leaf := e.Leaf()
		got, ok := termsScan(leaf)
		want, _ := termsRef(leaf)
		if !ok || !cmp.Equal(got, want, termsCmp) {
			t.Fatalf("leaf %s: scan %+v (%v), reference %+v", leaf, got, ok, want)
		}
		if len(e.Patients) > 0 && (got.patients[0] != e.Patients[0] || got.agent != e.UserID || !got.time.Equal(e.Time)) {
			t.Fatalf("leaf %d: terms %+v of event %+v", i, got, e)
		}
	}
	for _, s := range []string{
		`{}`, ` {"recorded":5,"agent":{"x":1},"entity":null} `,
		`{"agent":[{"who":{"identifier":{"system":"urn:phivault:user","value":"a"}}}],"agent":[]}`,
		`{"entity":[{"what":{"reference":"Patient/x"},"type":{"code":"1"},"role":{"code":"1"},"role":{"code":"2"}}]}`,
		`{"Entity":[{"what":{"reference":"Patient/x"},"type":{"code":"1"},"role":{"code":"1"}}],"RECORDED":"2026-01-01T00:00:00Z"}`,
		`{"entity":[1,"x",{"what":[],"type":{"code":1},"role":{"code":"1"}}],"recorded":"2026-01-01T00:00:00.5+02:00"}`,
		`{"a":[1e5,-0.5,true,false,null,{"b":"\u00e9\n"}],"entity":[{"what":{"reference":"Patient/\u0041"},"type":{"code":"1"},"role":{"code":"1"}}]}`,
		"{\"entity\":[{\"what\":{\"reference\":\"Patient/\xff\"},\"type\":{\"code\":\"1\"},\"role\":{\"code\":\"1\"}}]}",
	} {
		got, ok := termsScan([]byte(s))
		want, wok := termsRef([]byte(s))
		if ok != wok || !ok || !cmp.Equal(got, want, termsCmp) {
			t.Errorf("%s: scan %+v (%v), reference %+v (%v)", s, got, ok, want, wok)
		}
	}
	deep := strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001)
	if _, ok := termsScan([]byte(deep)); ok || json.Valid([]byte(deep)) && json.Unmarshal([]byte(deep), new(map[string]any)) == nil {
		t.Error("nesting beyond 10,000 levels accepted")
	}
	for _, s := range []string{``, `[]`, `{`, `{"a":}`, `{"a":01}`, `{"a":"\x"}`, `{"a":tru}`, `{"a":1}x`, "{\"a\":\"\x01\"}", `{"a" 1}`, `{"a":[1,]}`, `null`} {
		if _, ok := termsScan([]byte(s)); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzTermsScan: the scanner never panics, accepts only valid JSON
// objects, and agrees with the reference on every input.
func FuzzTermsScan(f *testing.F) {
	f.Add(testEvent(1).Leaf())
	f.Add([]byte(`{"entity":[{"what":{"reference":"Patient/\u0041"},"type":{"code":"1"},"role":{"code":"1"}}]}`))
	f.Add([]byte(`{"a":[1e5,-0.5,true,false,null,{"b":"\u00e9\n"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := termsScan(b)
		if ok && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		want, wok := termsRef(b)
		if ok != wok || !cmp.Equal(got, want, termsCmp) {
			t.Fatalf("%q: scan %+v (%v), reference %+v (%v)", b, got, ok, want, wok)
		}
	})
}
