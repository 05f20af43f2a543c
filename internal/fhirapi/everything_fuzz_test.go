package fhirapi

import (
	"errors"
	"net/url"
	"testing"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// FuzzParseEverything feeds arbitrary query strings to the $everything
// parameter parser: it never panics, every rejection is a 400 *Error, and
// an accepted query has a page size in [0, maxCount], only Patient
// compartment types, and links that parse back to the same query.
func FuzzParseEverything(f *testing.F) {
	for _, s := range []string{"", "_type=Observation,Patient", "_since=2024-01-02T03:04:05Z", "_count=5&_cursor=x.y",
		"_count=-1", "start=2020", "_type=", "_type=Practitioner", "_since=2024", "_format=json&_pretty=true"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		eq, err := parseEverything(q)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Status != 400 {
				t.Fatalf("%q: error %v is not a 400 *Error", raw, err)
			}
			return
		}
		if eq.count < 0 || eq.count > maxCount {
			t.Fatalf("%q: count %d out of range", raw, eq.count)
		}
		for typ := range eq.types {
			if !isEverythingType(typ) {
				t.Fatalf("%q: accepted type %q", raw, typ)
			}
		}
		again, err := parseEverything(eq.canon())
		if err != nil {
			t.Fatalf("%q: canonical query %q rejected: %v", raw, eq.canon().Encode(), err)
		}
		if again.count != eq.count || again.sinceT != eq.sinceT || len(again.types) != len(eq.types) {
			t.Fatalf("%q: canonical query parses differently", raw)
		}
	})
}

// TestCompartmentTypesKnown guards the hand-written type list against
// typos: every type has Patient compartment parameters in the registry.
func TestCompartmentTypesKnown(t *testing.T) {
	for _, typ := range patientCompartmentTypes {
		if len(searchparam.R4().PatientCompartment(typ)) == 0 {
			t.Errorf("%s has no Patient compartment parameters", typ)
		}
	}
}
