package search

import (
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// TestIDIndexedOnce: a resource's id is indexed under the one token that
// _id queries read (and the presence marker _id:missing reads), not also
// under the generic token keys of Resource.id, which nothing queries; and
// every form of _id query still answers.
func TestIDIndexedOnce(t *testing.T) {
	e := newEnv(t)
	res := map[string]any{"resourceType": "Observation", "id": "o1", "status": "final",
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "2339-0"}}},
		"subject": map[string]any{"reference": "Patient/p1"}}
	toks, _, err := e.eng.Index(res)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, tk := range toks {
		has[string(tk)] = true
	}
	if !has[string(e.eng.tok("Observation", "_id", kID, "o1"))] || !has[string(e.eng.tok("Observation", "_id", kPresent))] {
		t.Fatal("the _id token or its presence marker is missing")
	}
	// What the generic token indexing gives a token value with no system.
	for _, k := range valueKeys(searchparam.Value{Param: "_id", Type: searchparam.Token, Code: "o1"}) {
		if has[string(e.eng.tok("Observation", "_id", k[0], k[1:]...))] {
			t.Fatalf("Resource.id is also indexed under the generic %q key", k[0])
		}
	}

	e.load(res, map[string]any{"resourceType": "Patient", "id": "p2"},
		map[string]any{"resourceType": "Observation", "id": "o2", "status": "final",
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "2339-0"}}},
			"subject": map[string]any{"reference": "Patient/p2"}})
	for q, wantIDs := range map[string][]string{
		"Observation?_id=o1":                              {"Observation/o1"},
		"Observation?_id=o2,o1&_sort=_id":                 {"Observation/o1", "Observation/o2"},
		"Observation?_id=o1&status=final":                 {"Observation/o1"},
		"Observation?_id:missing=false&_sort=_id":         {"Observation/o1", "Observation/o2"},
		"Observation?_id:missing=true":                    nil,
		"Observation?subject._id=p1":                      nil, // p1 is not stored: a chain finds nothing
		"Observation?subject:Patient._id=p2":              {"Observation/o2"},
		"Patient?_has:Observation:subject:_id=o2":         {"Patient/p2"},
		"Observation?code=http://loinc.org|2339-0&_id=o2": {"Observation/o2"},
	} {
		if got := e.get(q).matches; !slices.Equal(got, wantIDs) {
			t.Errorf("%s: %v, want %v", q, got, wantIDs)
		}
	}
}
