package fhirapi

import (
	"net/url"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/fhir"
)

const shapePatient = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"},
 "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
 "identifier":[{"value":"123"}],"active":true,"name":[{"family":"Doe"}],"gender":"female",
 "birthDate":"1970-01-01","maritalStatus":{"text":"M"},"photo":[{"title":"p"}],
 "communication":[{"language":{"text":"en"}}],"managingOrganization":{"reference":"Organization/o"}}`

// TestShape checks what _summary and _elements leave in a resource: the
// summary view follows the R4 isSummary flags, and every subset is tagged
// SUBSETTED so a client cannot mistake it for the whole resource.
func TestShape(t *testing.T) {
	tests := []struct {
		q    string
		keys []string
	}{
		{"_summary=true", []string{"active", "birthDate", "gender", "id", "identifier", "managingOrganization", "meta", "name", "resourceType"}},
		{"_summary=text", []string{"id", "meta", "resourceType", "text"}},
		{"_summary=data", []string{"active", "birthDate", "communication", "gender", "id", "identifier", "managingOrganization", "maritalStatus", "meta", "name", "photo", "resourceType"}},
		{"_elements=name,gender", []string{"gender", "id", "meta", "name", "resourceType"}},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.q)
			out, err := shape(q, []byte(shapePatient))
			if err != nil {
				t.Fatal(err)
			}
			res, err := fhir.Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range res {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if d := cmp.Diff(tc.keys, keys); d != "" {
				t.Errorf("elements (-want +got):\n%s", d)
			}
			tags, _ := res["meta"].(map[string]any)["tag"].([]any)
			if len(tags) != 1 || tags[0].(map[string]any)["code"] != "SUBSETTED" {
				t.Errorf("meta.tag = %v, want SUBSETTED", tags)
			}
			if res["meta"].(map[string]any)["versionId"] != "2" {
				t.Error("meta.versionId lost")
			}
		})
	}
	for _, bad := range []string{"_summary=maybe", "_elements=nosuch", "_elements=,"} {
		q, _ := url.ParseQuery(bad)
		if _, err := shape(q, []byte(shapePatient)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	q := url.Values{}
	if out, _ := shape(q, []byte(shapePatient)); string(out) != shapePatient {
		t.Error("without _summary/_elements the stored body must be returned unchanged")
	}
}
