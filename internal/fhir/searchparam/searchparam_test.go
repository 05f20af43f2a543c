package searchparam

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

func values(vs []Value, code string) []Value {
	var out []Value
	for _, v := range vs {
		if v.Param == code {
			out = append(out, v)
		}
	}
	return out
}

const patientJSON = `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-02T03:04:05Z","tag":[{"system":"s","code":"t"}]},
 "identifier":[{"system":"urn:mrn","value":"123","type":{"text":"MRN","coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]}}],
 "active":true,"name":[{"family":"Müller","given":["Zoë","Ann"]}],"gender":"female","birthDate":"1974-12",
 "telecom":[{"system":"phone","value":"555"},{"system":"email","value":"z@x.org"}],
 "address":[{"city":"Köln","postalCode":"50667"}],
 "generalPractitioner":[{"reference":"https://ehr.example/fhir/Practitioner/dr1/_history/4"}],
 "managingOrganization":{"identifier":{"system":"urn:org","value":"o-1"}},
 "deceasedBoolean":false}`

const obsJSON = `{"resourceType":"Observation","id":"o1","status":"final",
 "code":{"text":"Weight","coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}]},
 "subject":{"reference":"Patient/p1"},"performer":[{"reference":"urn:uuid:9","type":"Practitioner"}],
 "effectivePeriod":{"start":"2020-01-01T10:00:00+02:00"},
 "valueQuantity":{"value":72.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},
 "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"code":"mm[Hg]","system":"http://unitsofmeasure.org"}}]}`

var ignore = cmpopts.IgnoreFields(Value{}, "Param", "Type")

func TestExtractPatient(t *testing.T) {
	vs, err := R4().Extract(decode(t, patientJSON))
	if err != nil {
		t.Fatal(err)
	}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		code string
		want []Value
	}{
		{"_id", []Value{{Code: "p1"}}},
		{"_tag", []Value{{System: "s", Code: "t"}}},
		{"_lastUpdated", []Value{{Low: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), High: time.Date(2024, 1, 2, 3, 4, 5, 999999999, time.UTC), Precision: 6}}},
		{"identifier", []Value{{System: "urn:mrn", Code: "123", Text: "MRN", TypeSystem: "http://terminology.hl7.org/CodeSystem/v2-0203", TypeCode: "MR"}}},
		{"active", []Value{{Code: "true"}}},
		{"family", []Value{{Text: "Müller"}}},
		{"given", []Value{{Text: "Zoë"}, {Text: "Ann"}}},
		{"name", []Value{{Text: "Müller"}, {Text: "Zoë"}, {Text: "Ann"}}},
		{"birthdate", []Value{{Low: day(1974, 12, 1), High: day(1975, 1, 1).Add(-time.Nanosecond), Precision: 2}}},
		{"phone", []Value{{Code: "555"}}},
		{"email", []Value{{Code: "z@x.org"}}},
		{"address-city", []Value{{Text: "Köln"}}},
		{"general-practitioner", []Value{{Ref: Ref{Raw: "https://ehr.example/fhir/Practitioner/dr1/_history/4", Type: "Practitioner", ID: "dr1", Version: "4", Base: "https://ehr.example/fhir"}}}},
		{"organization", []Value{{Ref: Ref{IdentifierSystem: "urn:org", IdentifierValue: "o-1"}}}},
		{"deceased", []Value{{Code: "false"}}}, // deceased.exists() and deceased != false
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, values(vs, tc.code), ignore, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.code, diff)
		}
	}
}

func TestExtractObservation(t *testing.T) {
	vs, err := R4().Extract(decode(t, obsJSON))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		code string
		want []Value
	}{
		{"code", []Value{{System: "http://loinc.org", Code: "29463-7", Display: "Body weight", Text: "Weight"}}},
		{"subject", []Value{{Ref: Ref{Raw: "Patient/p1", Type: "Patient", ID: "p1"}}}},
		{"patient", []Value{{Ref: Ref{Raw: "Patient/p1", Type: "Patient", ID: "p1"}}}},
		{"performer", []Value{{Ref: Ref{Raw: "urn:uuid:9", Type: "Practitioner"}}}},
		{"date", []Value{{Low: time.Date(2020, 1, 1, 8, 0, 0, 0, time.UTC), High: MaxTime}}},
		{"value-quantity", []Value{{Number: "72.50", Float: 72.5, System: "http://unitsofmeasure.org", Code: "kg", Unit: "kg"}}},
		{"component-value-quantity", []Value{{Number: "120", Float: 120, System: "http://unitsofmeasure.org", Code: "mm[Hg]"}}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, values(vs, tc.code), ignore, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.code, diff)
		}
	}
	cv := values(vs, "code-value-quantity")
	if len(cv) != 1 || len(cv[0].Components) != 2 || cv[0].Components[0].Code != "29463-7" || cv[0].Components[1].Number != "72.50" {
		t.Errorf("code-value-quantity = %+v", cv)
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in        string
		low, high string
		prec      Precision
	}{
		{"1974", "1974-01-01T00:00:00Z", "1974-12-31T23:59:59.999999999Z", 1},
		{"1974-02", "1974-02-01T00:00:00Z", "1974-02-28T23:59:59.999999999Z", 2},
		{"1974-12-25", "1974-12-25T00:00:00Z", "1974-12-25T23:59:59.999999999Z", 3},
		{"2015-02-07T13:28:17-05:00", "2015-02-07T18:28:17Z", "2015-02-07T18:28:17.999999999Z", 6},
		{"2015-02-07T13:28:17.239Z", "2015-02-07T13:28:17.239Z", "2015-02-07T13:28:17.239999999Z", 7},
		{"2015-02-07T13:28", "2015-02-07T13:28:00Z", "2015-02-07T13:28:59.999999999Z", 5},
	}
	for _, tc := range tests {
		low, high, p, err := ParseDate(tc.in)
		if err != nil {
			t.Errorf("ParseDate(%q): %v", tc.in, err)
			continue
		}
		if got := low.Format(time.RFC3339Nano) + " " + high.Format(time.RFC3339Nano); got != tc.low+" "+tc.high || p != tc.prec {
			t.Errorf("ParseDate(%q) = %s %d, want %s %s %d", tc.in, got, p, tc.low, tc.high, tc.prec)
		}
	}
	for _, bad := range []string{"", "197", "1974-13", "1974-02-30", "2015-02-07T25:00", "2015-02-07T10:00+99:00", "x"} {
		if _, _, _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) succeeded", bad)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"  Zoë   MÜLLER ": "zoe muller", "Straße": "strasse", "Łódź": "lodz", "Cafe\u0301": "cafe", "ΑΒΓ": "αβγ", "a\tb\nc": "a b c",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistry(t *testing.T) {
	r := R4()
	if p, ok := r.Lookup("Patient", "_id"); !ok || p.Expression != "Resource.id" {
		t.Errorf("Lookup(Patient,_id) = %+v %v", p, ok)
	}
	p, ok := r.Lookup("Observation", "patient")
	if !ok || p.Type != Reference || p.Expression != "Observation.subject.where(resolve() is Patient)" || !contains(p.Targets, "Patient") {
		t.Errorf("Lookup(Observation,patient) = %+v", p)
	}
	if _, ok := r.Lookup("Observation", "nope"); ok {
		t.Error("unknown code found")
	}
	ps := r.Params("Patient")
	for i := 1; i < len(ps); i++ {
		if ps[i-1].Code >= ps[i].Code {
			t.Fatalf("Params not sorted: %s >= %s", ps[i-1].Code, ps[i].Code)
		}
	}
	if got := r.PatientCompartment("Observation"); !cmp.Equal(got, []string{"subject", "performer"}) {
		t.Errorf("PatientCompartment(Observation) = %v", got)
	}
	if got := r.PatientCompartment("Organization"); got != nil {
		t.Errorf("PatientCompartment(Organization) = %v", got)
	}
}

func TestCustomParam(t *testing.T) {
	sp := decode(t, `{"resourceType":"SearchParameter","url":"http://x/sp/eye","code":"eye-colour","type":"token","base":["Patient"],
	  "expression":"Patient.extension('http://x/eye').value"}`)
	p, bases, err := ParamFromResource(sp)
	if err != nil || len(bases) != 1 {
		t.Fatal(err, bases)
	}
	r, err := R4().With(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := R4().Lookup("Patient", "eye-colour"); ok {
		t.Error("With modified the receiver")
	}
	vs, err := r.Extract(decode(t, `{"resourceType":"Patient","extension":[{"url":"http://x/eye","valueCodeableConcept":{"coding":[{"system":"s","code":"blue"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := values(vs, "eye-colour"); len(got) != 1 || got[0].Code != "blue" {
		t.Errorf("custom values = %+v", got)
	}
	for _, bad := range []string{
		`{"resourceType":"SearchParameter","code":"x","type":"token","base":["Patient"],"expression":"Patient.("}`,
		`{"resourceType":"SearchParameter","code":"x","type":"bogus","base":["Patient"],"expression":"Patient.id"}`,
		`{"resourceType":"SearchParameter","code":"","type":"token","base":["Patient"],"expression":"Patient.id"}`,
		`{"resourceType":"SearchParameter","code":"x","type":"token","expression":"Patient.id"}`,
	} {
		if _, _, err := ParamFromResource(decode(t, bad)); err == nil {
			t.Errorf("ParamFromResource accepted %s", bad)
		}
	}
	if _, err := R4().With(&Param{Code: "x", Type: Token, Base: []string{"Nope"}, Expression: "Nope.id"}); err == nil {
		t.Error("With accepted an unknown base")
	}
}

func TestExtractUnknownType(t *testing.T) {
	if _, err := R4().Extract(map[string]any{"resourceType": "Nope"}); err == nil {
		t.Error("unknown resourceType accepted")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestFHIRCasts: casts to System primitives in search expressions mean the
// FHIR primitives; other casts and names are left alone.
func TestFHIRCasts(t *testing.T) {
	for in, want := range map[string]string{
		"(Observation.value as CodeableConcept)":         "(Observation.value as CodeableConcept)",
		"value.as(DateTime) | value.as(Period)":          "value.as(dateTime) | value.as(Period)",
		"Observation.value.ofType(String)":               "Observation.value.ofType(string)",
		"(value as Boolean)":                             "(value as boolean)",
		"Patient.extension.where(url = 'DateTimeThing')": "Patient.extension.where(url = 'DateTimeThing')",
		"value.is(Date) and value.is(DateTimeX)":         "value.is(date) and value.is(DateTimeX)",
	} {
		if got := fhirCasts(in); got != want {
			t.Errorf("fhirCasts(%q) = %q, want %q", in, got, want)
		}
	}
}
