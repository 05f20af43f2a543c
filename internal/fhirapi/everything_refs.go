package fhirapi

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/records"
)

// everythingRefTypes are the types outside the Patient compartment that
// $everything adds when a returned resource refers to them.
var everythingRefTypes = []string{"Location", "Medication", "Organization", "Practitioner", "PractitionerRole"}

// everythingIncludes returns the Practitioner, PractitionerRole,
// Organization, Location and Medication resources that page refers to
// (relative references, or absolute ones under base), current and not
// deleted, each once, in type and id order. The caller decides each.
func (a *API) everythingIncludes(c *call, page []records.Entry) ([]records.Entry, error) {
	want := map[string][]string{}
	seen := map[string]bool{}
	for _, e := range page {
		var doc any
		if json.Unmarshal(e.Body, &doc) != nil {
			continue
		}
		walkRefs(doc, func(ref string) {
			ref = strings.TrimPrefix(ref, a.Base+"/")
			typ, id, ok := strings.Cut(ref, "/")
			if !ok || !slices.Contains(everythingRefTypes, typ) || !fhir.IsID(id) || seen[ref] {
				return
			}
			seen[ref] = true
			want[typ] = append(want[typ], id)
		})
	}
	var out []records.Entry
	for _, typ := range everythingRefTypes {
		ids := want[typ]
		if len(ids) == 0 {
			continue
		}
		slices.Sort(ids)
		es, err := a.Records.ReadMany(c.ctx, typ, ids)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// walkRefs calls fn with every string value of a "reference" member in v.
func walkRefs(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, m := range x {
			if s, ok := m.(string); ok && k == "reference" {
				fn(s)
				continue
			}
			walkRefs(m, fn)
		}
	case []any:
		for _, m := range x {
			walkRefs(m, fn)
		}
	}
}
