package fhir

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	`{"resourceType":"Patient","id":"p1","name":[{"family":"Chalmers","given":["Peter","James"]}],"gender":"male","birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://x","valueDateTime":"1974-12-25T14:35:45-05:00"}]}}`,
	`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"15074-8"}]},"subject":{"reference":"Patient/f001"},"valueQuantity":{"value":6.3,"unit":"mmol/l","system":"http://unitsofmeasure.org","code":"mmol/L"}}`,
	`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e","resource":{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}]},"request":{"method":"POST","url":"Patient"}}]}`,
	`{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string"}]}]}`,
	`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}`,
	`{"resourceType":"Patient","a":[[[[{"b":"\ud83d\ude00\u00e9"}]]]],"n":-0.0e-0}`,
	`[]`, `{}`, `{"resourceType":1}`, `{"resourceType":"Patient","id":"a","id":"b"}`,
}

// FuzzParse checks that Parse never panics and agrees with encoding/json: whatever Parse
// accepts is valid JSON with the same content.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted invalid JSON")
		}
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var want map[string]any
		if err := d.Decode(&want); err != nil {
			t.Fatalf("encoding/json rejects what Parse accepted: %v", err)
		}
		got, _ := json.Marshal(r)
		exp, _ := json.Marshal(want)
		if !bytes.Equal(got, exp) {
			t.Fatalf("Parse and encoding/json disagree:\n%s\n%s", got, exp)
		}
	})
}

// FuzzValidate checks that parsing then validating arbitrary input never panics, and that
// issue messages never contain string values of the input.
func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		issues := Validate(r)
		if oo := Validate(OperationOutcome(issues)); oo != nil {
			t.Fatalf("OperationOutcome of the issues is invalid: %v", oo)
		}
		for _, is := range issues {
			if strings.Contains(is.Message, "\x00") {
				t.Fatalf("message contains a NUL: %q", is.Message)
			}
		}
	})
}
