package fhir

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// issueKey is the part of an Issue a test pins: location, code and message prefix.
type issueKey struct{ Loc, Code, Msg string }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []issueKey // message prefixes
	}{
		{"valid patient", `{"resourceType":"Patient","id":"p1","active":true,"gender":"female","birthDate":"1974-12-25",
			"name":[{"family":"SECRET","given":["A","B"]}],"multipleBirthInteger":2,
			"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>SECRET</p></div>"}}`, nil},
		{"unknown resource type", `{"resourceType":"SECRETType"}`, []issueKey{{"Resource.resourceType", CodeStructure, "unknown resource type"}}},
		{"abstract resource type", `{"resourceType":"DomainResource"}`, []issueKey{{"Resource.resourceType", CodeStructure, "unknown resource type"}}},
		{"unknown element", `{"resourceType":"Patient","SECRET":1}`, []issueKey{{"Patient.SECRET", CodeStructure, "unknown element"}}},
		{"unsafe unknown name", `{"resourceType":"Patient","SECRET value!":1}`, []issueKey{{"Patient.(invalid name)", CodeStructure, "unknown element"}}},
		{"unknown in datatype", `{"resourceType":"Patient","name":[{"surname":"SECRET"}]}`, []issueKey{{"Patient.name[0].surname", CodeStructure, "unknown element"}}},
		{"unknown in backbone", `{"resourceType":"Patient","contact":[{"nickname":"SECRET"}]}`, []issueKey{{"Patient.contact[0].nickname", CodeStructure, "unknown element"}}},
		{"wrong JSON type", `{"resourceType":"Patient","active":"SECRET"}`, []issueKey{{"Patient.active", CodeStructure, "expected a JSON boolean"}}},
		{"object expected", `{"resourceType":"Patient","maritalStatus":"SECRET"}`, []issueKey{{"Patient.maritalStatus", CodeStructure, "expected an object"}}},
		{"array expected", `{"resourceType":"Patient","name":{"family":"SECRET"}}`, []issueKey{{"Patient.name", CodeStructure, "expected an array"}}},
		{"single expected", `{"resourceType":"Patient","gender":["female"]}`, []issueKey{{"Patient.gender", CodeStructure, "expected a single value"}}},
		{"empty array", `{"resourceType":"Patient","name":[]}`, []issueKey{{"Patient.name", CodeStructure, "empty arrays"}}},
		{"empty object", `{"resourceType":"Patient","name":[{}]}`, []issueKey{{"Patient.name[0]", CodeStructure, "empty objects"}}},
		{"null", `{"resourceType":"Patient","birthDate":null}`, []issueKey{{"Patient.birthDate", CodeStructure, "null is not allowed"}}},
		{"valid rich patient", `{"resourceType":"Patient","name":[{"family":"SECRET"}],"link":[{"other":{"reference":"Patient/1"},"type":"seealso"}],
			"photo":[{"url":"http://x"}],"telecom":[{"value":"SECRET","period":{"start":"2000","end":"2001"}}],"communication":[{"language":{"text":"x"}}],
			"generalPractitioner":[{"display":"x"}],"managingOrganization":{"display":"x"},"contact":[{"name":{"given":["SECRET","SECRET","SECRET"]}}],
			"address":[{"period":{"start":"2000"},"line":["a"]}],"deceasedBoolean":false}`, nil},
		{"valid rich observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"referenceRange":[{"text":"x"}],
			"component":[{"code":{"text":"x"}}],"bodySite":{"text":"x"},"method":{"text":"x"},"specimen":{"reference":"Specimen/1"},
			"device":{"reference":"Device/1"},"hasMember":[{"reference":"Observation/2"}],"focus":[{"reference":"Patient/1"}],
			"effectiveInstant":"2015-02-07T13:28:17.239+02:00","issued":"2015-02-07T13:28:17Z","valueString":"SECRET"}`, nil},
		{"missing required", `{"resourceType":"Observation","code":{"text":"x"}}`, []issueKey{{"Observation.status", CodeRequired, "missing required element"}}},
		{"missing required choice", `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}}`,
			[]issueKey{{"MedicationRequest.medication[x]", CodeRequired, "missing required element"}}},
		{"two choice types", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"SECRET","valueBoolean":true}`,
			[]issueKey{{"Observation.valueString", CodeStructure, "only one type of the choice element value[x]"}}},
		{"required binding", `{"resourceType":"Patient","gender":"SECRET"}`, []issueKey{{"Patient.gender", CodeCodeInvalid, "code not in required value set http://hl7.org/fhir/ValueSet/administrative-gender (allowed: female, male, other, unknown)"}}},
		{"required binding status", `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`, []issueKey{{"Observation.status", CodeCodeInvalid, "code not in required value set http://hl7.org/fhir/ValueSet/observation-status"}}},
		{"required binding coding", `{"resourceType":"Patient","contact":[{"name":{"use":"official"},"gender":"male","relationship":[{"text":"x"}]}],
			"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en"}]}}],"name":[{"use":"SECRET"}]}`,
			[]issueKey{{"Patient.name[0].use", CodeCodeInvalid, "code not in required value set http://hl7.org/fhir/ValueSet/name-use"}}},
		{"bad date", `{"resourceType":"Patient","birthDate":"25/12/1974"}`, []issueKey{{"Patient.birthDate", CodeValue, "invalid date: expected YYYY, YYYY-MM or YYYY-MM-DD"}}},
		{"no such day", `{"resourceType":"Patient","birthDate":"2023-02-29"}`, []issueKey{{"Patient.birthDate", CodeValue, "invalid date: no such day"}}},
		{"leap day", `{"resourceType":"Patient","birthDate":"2024-02-29"}`, nil},
		{"dateTime needs zone", `{"resourceType":"Patient","deceasedDateTime":"2020-01-01T10:00:00"}`, []issueKey{{"Patient.deceasedDateTime", CodeValue, "invalid dateTime"}}},
		{"instant", `{"resourceType":"Patient","meta":{"lastUpdated":"2020-01-01"}}`, []issueKey{{"Patient.meta.lastUpdated", CodeValue, "invalid instant"}}},
		{"time", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":"25:00:00"}`, []issueKey{{"Observation.valueTime", CodeValue, "invalid time"}}},
		{"id", `{"resourceType":"Patient","id":"SECRET_id"}`, []issueKey{{"Patient.id", CodeValue, "invalid id"}}},
		{"id too long", `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, []issueKey{{"Patient.id", CodeValue, "invalid id"}}},
		{"uri whitespace", `{"resourceType":"Patient","implicitRules":"http://SECRET x"}`, []issueKey{{"Patient.implicitRules", CodeValue, "invalid uri"}}},
		{"oid", `{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3"}],"extension":[{"url":"http://x","valueOid":"1.2.3"}]}`,
			[]issueKey{{"Patient.extension[0].valueOid", CodeValue, "invalid oid"}}},
		{"uuid", `{"resourceType":"Patient","extension":[{"url":"http://x","valueUuid":"urn:uuid:C0FFEE00-0000-0000-0000-000000000000"}]}`,
			[]issueKey{{"Patient.extension[0].valueUuid", CodeValue, "invalid uuid"}}},
		{"code whitespace", `{"resourceType":"Patient","gender":" male"}`, []issueKey{{"Patient.gender", CodeValue, "invalid code"}}},
		{"decimal from JSON string", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}}`,
			[]issueKey{{"Observation.valueQuantity.value", CodeStructure, "expected a JSON number (decimal)"}}},
		{"integer", `{"resourceType":"Patient","multipleBirthInteger":1.5}`, []issueKey{{"Patient.multipleBirthInteger", CodeValue, "invalid integer"}}},
		{"integer range", `{"resourceType":"Patient","multipleBirthInteger":2147483648}`, []issueKey{{"Patient.multipleBirthInteger", CodeValue, "invalid integer: out of the 32-bit range"}}},
		{"positiveInt", `{"resourceType":"Patient","photo":[{"size":-1}],"extension":[{"url":"http://x","valuePositiveInt":0}]}`,
			[]issueKey{{"Patient.extension[0].valuePositiveInt", CodeValue, "invalid positiveInt"}, {"Patient.photo[0].size", CodeValue, "invalid unsignedInt"}}},
		{"base64", `{"resourceType":"Patient","photo":[{"data":"SECRET!"}]}`, []issueKey{{"Patient.photo[0].data", CodeValue, "invalid base64Binary"}}},
		{"empty string", `{"resourceType":"Patient","name":[{"family":""}]}`, []issueKey{{"Patient.name[0].family", CodeValue, "empty strings"}}},
		{"control char", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"SECRET\\u0007\"}]}", []issueKey{{"Patient.name[0].family", CodeValue, "invalid string: control characters"}}},
		{"primitive extension", `{"resourceType":"Patient","_birthDate":{"id":"x","extension":[{"url":"http://x","valueString":"SECRET"}]}}`, nil},
		{"primitive extension array aligned", `{"resourceType":"Patient","name":[{"given":["SECRET",null],"_given":[null,{"extension":[{"url":"http://x","valueCode":"x"}]}]}]}`, nil},
		{"primitive extension misaligned", `{"resourceType":"Patient","name":[{"given":["SECRET"],"_given":[null,{"id":"x"}]}]}`,
			[]issueKey{{"Patient.name[0].given", CodeStructure, "primitive extension array must have the same length"}}},
		{"null without extension", `{"resourceType":"Patient","name":[{"given":["SECRET",null],"_given":[{"id":"a"},null]}]}`,
			[]issueKey{{"Patient.name[0].given[1]", CodeStructure, "null is not allowed without a primitive extension"}}},
		{"primitive extension unknown", `{"resourceType":"Patient","_birthDate":{"SECRET":1}}`, []issueKey{{"Patient.birthDate.SECRET", CodeStructure, "unknown element"}}},
		{"primitive extension on complex", `{"resourceType":"Patient","_name":[{"id":"x"}]}`, []issueKey{{"Patient._name", CodeStructure, "unknown element"}}},
		{"extension without url", `{"resourceType":"Patient","extension":[{"valueString":"SECRET"}]}`, []issueKey{{"Patient.extension[0].url", CodeRequired, "missing required element"}}},
		{"modifierExtension without url", `{"resourceType":"Patient","modifierExtension":[{"valueString":"SECRET"}]}`, []issueKey{{"Patient.modifierExtension[0].url", CodeRequired, "missing required element"}}},
		{"extension value and children", `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"SECRET","extension":[{"url":"y","valueBoolean":true}]}]}`,
			[]issueKey{{"Patient.extension[0]", CodeInvalid, "an extension must have either a value or nested extensions"}}},
		{"contained", `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"pr","name":[{"family":"SECRET"}],"gender":"SECRET"}],
			"generalPractitioner":[{"reference":"#pr"}]}`, []issueKey{{"Patient.contained[0].gender", CodeCodeInvalid, "code not in required value set"}}},
		{"contained invariants", `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"a","contained":[{"resourceType":"Organization","id":"b"}],
			"meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z","security":[{"code":"R"}]}}]}`, []issueKey{
			{"Patient.contained[0].contained", CodeInvalid, "a contained resource must not contain resources (dom-2)"},
			{"Patient.contained[0].meta.lastUpdated", CodeInvalid, "a contained resource must not have a version id or last-updated time (dom-4)"},
			{"Patient.contained[0].meta.security", CodeInvalid, "a contained resource must not have security labels (dom-5)"},
			{"Patient.contained[0].meta.versionId", CodeInvalid, "a contained resource must not have a version id or last-updated time (dom-4)"},
		}},
		{"long string", `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 1<<20+1) + `"}]}`,
			[]issueKey{{"Patient.name[0].family", CodeValue, "invalid string: longer than 1 MiB characters"}}},
		{"contained without type", `{"resourceType":"Patient","contained":[{"id":"x"}]}`, []issueKey{{"Patient.contained[0].resourceType", CodeRequired, "missing resourceType"}}},
		{"bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e","resource":{"resourceType":"Patient","birthDate":"SECRET"}}]}`,
			[]issueKey{{"Bundle.entry[0].resource.birthDate", CodeValue, "invalid date"}}},
		{"content reference", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"SECRET"}]}]}`,
			[]issueKey{{"Questionnaire.item[0].item[0].type", CodeCodeInvalid, "code not in required value set"}}},
		{"references ok", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/123"},
			"performer":[{"reference":"#"},{"reference":"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"},{"reference":"urn:oid:1.2.3"},
			{"reference":"https://example.org/fhir/Practitioner/1"},{"reference":"Practitioner/1/_history/2"},{"reference":"Practitioner?identifier=a|b"}]}`, nil},
		{"reference unknown type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"SECRET/123"}}`,
			[]issueKey{{"Observation.subject.reference", CodeValue, "invalid reference: unknown resource type"}}},
		{"reference bad id", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/SECRET value"}}`,
			[]issueKey{{"Observation.subject.reference", CodeValue, "invalid reference: malformed id"}}},
		{"reference bare id", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"SECRET"}}`,
			[]issueKey{{"Observation.subject.reference", CodeValue, "invalid reference: expected Type/id"}}},
		{"xhtml script", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>SECRET</script></div>"}}`,
			[]issueKey{{"Patient.text.div", CodeValue, "invalid xhtml: element not allowed"}}},
		{"xhtml handler", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"SECRET\">x</p></div>"}}`,
			[]issueKey{{"Patient.text.div", CodeValue, "invalid xhtml: event handler"}}},
		{"xhtml not div", `{"resourceType":"Patient","text":{"status":"generated","div":"<p>SECRET</p>"}}`,
			[]issueKey{{"Patient.text.div", CodeValue, "invalid xhtml: the root must be a div"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			issues := Validate(r)
			var got []issueKey
			for i, is := range issues {
				if is.Severity != SeverityError {
					t.Errorf("issue %d severity %q", i, is.Severity)
				}
				if strings.Contains(is.Message, "SECRET") || strings.Contains(is.Location, "SECRET") && !strings.HasSuffix(is.Location, ".SECRET") {
					t.Errorf("issue leaks a value: %v", is)
				}
				k := issueKey{is.Location, is.Code, is.Message}
				if i < len(tt.want) && strings.HasPrefix(is.Message, tt.want[i].Msg) {
					k.Msg = tt.want[i].Msg
				}
				got = append(got, k)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("issues mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOperationOutcome(t *testing.T) {
	oo := OperationOutcome([]Issue{{Severity: SeverityError, Code: CodeRequired, Location: "Patient.name", Message: "missing"}})
	want := Resource{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
		"severity": "error", "code": "required", "diagnostics": "missing", "expression": []any{"Patient.name"},
	}}}
	if diff := cmp.Diff(want, oo); diff != "" {
		t.Errorf("OperationOutcome mismatch (-want +got):\n%s", diff)
	}
	if issues := Validate(oo); issues != nil {
		t.Errorf("OperationOutcome is not valid FHIR: %v", issues)
	}
	empty := OperationOutcome(nil)
	if issues := Validate(empty); issues != nil {
		t.Errorf("empty OperationOutcome is not valid FHIR: %v", issues)
	}
}

func TestValidateHandBuilt(t *testing.T) {
	r := Resource{
		"resourceType":         "Patient",
		"contained":            []any{Resource{"resourceType": "Organization", "name": "x"}},
		"name":                 []map[string]any{{"family": "SECRET"}}, // not a JSON shape
		"multipleBirthInteger": 2,
		"extension":            []any{map[string]any{"url": "http://x", "valueDecimal": 1.5}},
	}
	got := Validate(r)
	want := []Issue{{Severity: SeverityError, Code: CodeStructure, Location: "Patient.name", Message: "expected an array"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("issues mismatch (-want +got):\n%s", diff)
	}
	cyclic := map[string]any{"url": "http://x"}
	cyclic["extension"] = []any{cyclic}
	if issues := Validate(Resource{"resourceType": "Patient", "extension": []any{cyclic}}); len(issues) == 0 {
		t.Error("cyclic resource validated clean")
	}
}

func TestIsResourceType(t *testing.T) {
	for name, want := range map[string]bool{"Patient": true, "Bundle": true, "Resource": false, "DomainResource": false, "HumanName": false, "string": false, "": false} {
		if got := IsResourceType(name); got != want {
			t.Errorf("IsResourceType(%q) = %v, want %v", name, got, want)
		}
	}
}
