package fhirapi

import (
	"regexp"
	"testing"
)

// TestNewIDsSortInCreationOrder: server-assigned ids are valid FHIR ids,
// distinct, and each sorts after the one made before it (the store's
// id-keyed B-trees then take creates at their end).
func TestNewIDsSortInCreationOrder(t *testing.T) {
	fhirID := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	v7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	prev := ""
	for i := range 20000 {
		id := newID()
		if !fhirID.MatchString(id) || !v7.MatchString(id) {
			t.Fatalf("id %d = %q: not a version 7 UUID", i, id)
		}
		if id <= prev {
			t.Fatalf("id %d = %q sorts before or equal to the one before it, %q", i, id, prev)
		}
		prev = id
	}
}
