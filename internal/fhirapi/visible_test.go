package fhirapi

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// labelsRef is the reference for labels: decode into map[string]any
// (exact keys, the last duplicate wins) and walk it, taking nothing from
// a field of an unexpected type.
func labelsRef(body []byte) (security, category []string) {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return nil, nil
	}
	code := func(v any) string {
		o, _ := v.(map[string]any)
		c, _ := o["code"].(string)
		return c
	}
	meta, _ := m["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	for _, v := range sec {
		if c := code(v); c != "" {
			security = append(security, c)
		}
	}
	concepts, isList := m["category"].([]any)
	if !isList {
		concepts = []any{m["category"]}
	}
	for _, cc := range concepts {
		o, _ := cc.(map[string]any)
		codings, _ := o["coding"].([]any)
		for _, cd := range codings {
			if c := code(cd); c != "" {
				category = append(category, c)
			}
		}
	}
	return security, category
}

// FuzzLabels: labels never panics, returns nothing for a body that is not
// a JSON object, and returns what the reference does for every body.
func FuzzLabels(f *testing.F) {
	f.Add([]byte(`{"meta":{"security":[{"code":"R"}]},"category":[{"coding":[{"code":"laboratory"}]}]}`))
	f.Add([]byte(`{"category":{"coding":[{"code":"a"}]}}`))
	f.Add([]byte(`{"meta":{"security":[{"code":"R"}]},"meta":{"tag":[]},"category":[1,{"coding":[{"code":5},{"code":"\u0041"}]}]}`))
	f.Add([]byte(`{"meta":{"security":[{"code":"R","code":"N"}],"security":[{"code":"V"}]},"Category":{"coding":[{"code":"x"}]}}`))
	f.Add([]byte(`{"meta":{"security":[{"code":"R","code":"N"},{"code":"V","code":7}]},"category":{"coding":[{"code":"a"}],"coding":[{"code":"b"}]}}`))
	f.Add([]byte(`{"category":[{"coding":[{"code":"a"}]},{"coding":[{"code":"b"}],"coding":[{"code":"c"}]}]}`))
	f.Add([]byte(`{"category":{"coding":[{"code":"0"}],"coding":[]}}`))
	// No codes is no codes: an empty list and nil are the same answer.
	same := cmpopts.EquateEmpty()
	f.Fuzz(func(t *testing.T, body []byte) {
		s, c := labels(body)
		rs, rc := labelsRef(body)
		if !cmp.Equal(s, rs, same) || !cmp.Equal(c, rc, same) {
			t.Fatalf("labels(%q) = %q %q, reference %q %q", body, s, c, rs, rc)
		}
		for _, code := range append(s, c...) {
			if code == "" || !json.Valid(body) {
				t.Fatalf("labels(%q) returned %q", body, code)
			}
		}
	})
}
