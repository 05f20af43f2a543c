package synth_test

import (
	"encoding/json"
	"testing"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/synth"
)

// TestValidFHIR parses every generated bundle with the strict parser and validates it, with
// every resource in it, against the R4 base definitions.
func TestValidFHIR(t *testing.T) {
	n := 0
	for b := range synth.Bundles(synth.Options{Seed: 2026, Patients: 40}) {
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r, err := fhir.Parse(raw)
		if err != nil {
			t.Fatalf("bundle %d: %v", n, err)
		}
		for _, issue := range fhir.Validate(r) {
			t.Errorf("bundle %d: %v", n, issue)
		}
		n++
	}
}
