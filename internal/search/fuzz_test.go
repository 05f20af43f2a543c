package search

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/phivault/phivault/internal/fhirapi"
)

// FuzzParse feeds arbitrary query strings to the search parser: it must
// never panic, and every rejection must be a client error (a 4xx
// OperationOutcome), never an internal one.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"name=smi", "birthdate=ge1970-01&birthdate=lt1980", "code=http://loinc.org|8302-2,|x,sys|",
		"value-quantity=le5.4|http://unitsofmeasure.org|mg", "subject:Patient.name:contains=a",
		"_has:Observation:subject:code=1", "_include=Observation:subject&_revinclude=*&_sort=-date,name",
		"_count=7&_total=accurate&_summary=count", "identifier:of-type=a|b|c", "url:below=http://x/y",
		"date=ap2020-02-30", "_id=a%2Cb,c", "name:missing=true", "_lastUpdated=sa2024-01-01T00:00:00Z",
		"general-practitioner:Practitioner.organization:Organization.name=x", "%ZZ=&&==", "_cursor=AAAA",
	} {
		f.Add("Patient", s)
		f.Add("Observation", s)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, typ, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // the HTTP layer rejects these before search sees them
		}
		_, err = e.eng.parse(context.Background(), typ, q, parseOpts{base: testBase})
		if err == nil {
			return
		}
		var fe *fhirapi.Error
		if !errors.As(err, &fe) || fe.Status < 400 || fe.Status >= 500 {
			t.Fatalf("parse(%q, %q) failed with a non-client error: %v", typ, raw, err)
		}
	})
}
