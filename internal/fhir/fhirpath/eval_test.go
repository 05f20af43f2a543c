package fhirpath

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const obsJSON = `{"resourceType":"Observation","id":"o1",
 "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
 "subject":{"reference":"Patient/p1"},
 "performer":[{"reference":"urn:uuid:1234","type":"Practitioner"},{"reference":"#pr"},{"reference":"http://x.org/fhir/Organization/o9/_history/3"}],
 "contained":[{"resourceType":"RelatedPerson","id":"pr"}],
 "valueQuantity":{"value":72.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},
 "effectiveDateTime":"2016-03-28",
 "extension":[{"url":"http://e/x","valueString":"hi"}],
 "telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}]}`

func TestEvaluate(t *testing.T) {
	obs := decode(t, obsJSON)
	tests := []struct{ expr, want string }{
		{"Observation.code.coding.code", "29463-7"},
		{"Observation.subject.where(resolve() is Patient)", `{"reference":"Patient/p1"}`},
		{"Observation.performer.where(resolve() is Practitioner).reference", "urn:uuid:1234"},
		{"Observation.performer.where(resolve() is RelatedPerson).reference", "#pr"},
		{"Observation.performer.where(resolve() is Organization).reference", "http://x.org/fhir/Organization/o9/_history/3"},
		{"Observation.performer.where(resolve() is Patient)", ""},
		{"(Observation.value as Quantity).value", "72.50"},
		{"Observation.value.as(Quantity).unit", "kg"},
		{"Observation.value.ofType(Quantity).code", "kg"},
		{"Observation.value as CodeableConcept", ""},
		{"Observation.value is Quantity", "true"},
		{"Observation.effective as dateTime", "2016-03-28"},
		{"Observation.extension('http://e/x').value", "hi"},
		{"Observation.telecom.where(system='email').value", "a@b"},
		{"Observation.telecom.value | Observation.telecom.value", "1,a@b"},
		{"Observation.code.exists() and Observation.status.empty()", "true"},
		{"Observation.telecom.first().value != '2'", "true"},
		{"Observation.telecom.count() + 1", "3"},
		{"Resource.id", "o1"},
		{"%resource.id", "o1"},
		{"Observation.effective > @2016-01-01", "true"},
		{"(1.5 + 1) * 2", "5.0"},
		{"'a' & 'b' = 'ab'", "true"},
		{"Observation.hasExtension('http://e/x')", "true"},
		{"Observation.value.value >= 72.5 and (Observation.value.value < 73)", "true"},
		{"@2014-01-25 + 1 month", "2014-02-25"},
		{"Observation.code.coding[0].system.substring(7, 5).upper()", "LOINC"},
	}
	for _, tc := range tests {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		got, err := e.Evaluate(obs, nil)
		if err != nil {
			t.Errorf("Evaluate(%q): %v", tc.expr, err)
			continue
		}
		var parts []string
		for _, it := range got {
			parts = append(parts, it.String())
		}
		if s := strings.Join(parts, ","); s != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, s, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{"", "a.", "a(", "'open", "1 +", "a[1", "/* x", "a.where(", "@2014-13", "a is", "%", strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500)} {
		if _, err := Parse(src); err == nil {
			t.Errorf("Parse(%q) succeeded", src)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"Patient.name.given", "a.where(b = 'c') | d.as(Quantity)", "@2014-01-01T10:00:00.123+02:00", "1 'mg' + 2.5 days", "%`vs-x`.exists()", "x[0].y.resolve() is Patient", "-(1 div 0)"} {
		f.Add(s)
	}
	res := decode(f, obsJSON)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		_, _ = e.Evaluate(res, nil) // must not panic
		var b bytes.Buffer
		b.WriteString(e.String())
	})
}
