package fhirapi

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		body           string
		security, cats []string
	}{
		{`{"resourceType":"Observation","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"},{"code":"HIV"}]},` +
			`"category":[{"coding":[{"code":"laboratory"},{"code":"x"}]},{"coding":[{"code":"vital-signs"}]}]}`,
			[]string{"R", "HIV"}, []string{"laboratory", "x", "vital-signs"}},
		{`{"resourceType":"Consent","category":{"coding":[{"code":"59284-0"}]}}`, nil, []string{"59284-0"}},
		{`{"resourceType":"Patient"}`, nil, nil},
		{`{"meta":{"security":[{"code":""}]},"category":"text"}`, nil, nil},
		{`not json`, nil, nil},
		{``, nil, nil},
	} {
		s, c := labels([]byte(tc.body))
		if !cmp.Equal(tc.security, s) || !cmp.Equal(tc.cats, c) {
			t.Errorf("labels(%s) = %v %v, want %v %v", tc.body, s, c, tc.security, tc.cats)
		}
	}
}

// FuzzLabels: labels never panics, returns nothing for a body that is not
// JSON, and never returns an empty code.
func FuzzLabels(f *testing.F) {
	f.Add([]byte(`{"meta":{"security":[{"code":"R"}]},"category":[{"coding":[{"code":"laboratory"}]}]}`))
	f.Add([]byte(`{"category":{"coding":[{"code":"a"}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, c := labels(body)
		for _, code := range append(s, c...) {
			if code == "" || !json.Valid(body) {
				t.Fatalf("labels(%q) returned %q", body, code)
			}
		}
	})
}
