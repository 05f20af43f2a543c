package fhir

import (
	"bytes"
	"encoding/json"
	"testing"
)

const benchPatient = `{"resourceType":"Patient","id":"example","meta":{"versionId":"3","lastUpdated":"2024-05-01T10:00:00Z"},
"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Peter James Chalmers, male, born 1974-12-25</p></div>"},
"identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345","period":{"start":"2001-05-06"},"assigner":{"display":"Acme Healthcare"}}],
"active":true,"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},{"use":"usual","given":["Jim"]}],
"telecom":[{"system":"phone","value":"(03) 5555 6473","use":"work","rank":1},{"system":"email","value":"jim@example.org"}],
"gender":"male","birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]},
"deceasedBoolean":false,"address":[{"use":"home","type":"both","text":"534 Erewhon St PeasantVille, Rainbow, Vic  3999","line":["534 Erewhon St"],"city":"PleasantVille","district":"Rainbow","state":"Vic","postalCode":"3999","period":{"start":"1974-12-25"}}],
"contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"N"}]}],"name":{"family":"du Marché","given":["Bénédicte"]},"telecom":[{"system":"phone","value":"+33 (237) 998327"}],"gender":"female"}],
"managingOrganization":{"reference":"Organization/1"}}`

const benchObservation = `{"resourceType":"Observation","id":"f001","identifier":[{"use":"official","system":"http://www.bmc.nl/zorgportal/identifiers/observations","value":"6323"}],
"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
"code":{"coding":[{"system":"http://loinc.org","code":"15074-8","display":"Glucose [Moles/volume] in Blood"}]},
"subject":{"reference":"Patient/f001","display":"P. van de Heuvel"},"effectivePeriod":{"start":"2013-04-02T09:30:10+01:00"},
"issued":"2013-04-03T15:30:10+01:00","performer":[{"reference":"Practitioner/f005","display":"A. Langeveld"}],
"valueQuantity":{"value":6.3,"unit":"mmol/l","system":"http://unitsofmeasure.org","code":"mmol/L"},
"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"H"}]}],
"referenceRange":[{"low":{"value":3.1,"unit":"mmol/l","system":"http://unitsofmeasure.org","code":"mmol/L"},"high":{"value":6.2,"unit":"mmol/l","system":"http://unitsofmeasure.org","code":"mmol/L"}}]}`

func TestBenchResourcesValid(t *testing.T) {
	for _, s := range []string{benchPatient, benchObservation} {
		r, err := Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if issues := Validate(r); issues != nil {
			t.Errorf("%s: %v", r.Type(), issues)
		}
	}
}

func benchParseValidate(b *testing.B, doc string, validate bool) {
	data := []byte(doc)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if validate {
			if issues := Validate(r); issues != nil {
				b.Fatal(issues)
			}
		}
	}
}

// The Parse and Parse+Validate pairs are meant to be read as a ratio: the cost validation
// adds on top of parsing.
func BenchmarkParsePatient(b *testing.B)             { benchParseValidate(b, benchPatient, false) }
func BenchmarkParseValidatePatient(b *testing.B)     { benchParseValidate(b, benchPatient, true) }
func BenchmarkParseObservation(b *testing.B)         { benchParseValidate(b, benchObservation, false) }
func BenchmarkParseValidateObservation(b *testing.B) { benchParseValidate(b, benchObservation, true) }

// BenchmarkStdlibUnmarshalPatient is the baseline for BenchmarkParsePatient: encoding/json
// with UseNumber into map[string]any, which checks neither duplicates nor depth.
func BenchmarkStdlibUnmarshalPatient(b *testing.B) {
	data := []byte(benchPatient)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			b.Fatal(err)
		}
	}
}
