package fhir

import "testing"

func TestMaxOne(t *testing.T) {
	for _, tt := range []struct {
		typ  string
		path []string
		want bool
	}{
		{"Observation", []string{"effective"}, true},
		{"Observation", []string{"meta", "lastUpdated"}, true},
		{"Patient", []string{"birthDate"}, true},
		{"Encounter", []string{"period"}, true},
		{"Composition", []string{"event", "period"}, false}, // event is 0..*
		{"Patient", []string{"name", "family"}, false},      // name is 0..*
		{"Observation", []string{"effective", "start"}, false},
		{"Observation", []string{"noSuchElement"}, false},
		{"NoSuchType", []string{"id"}, false},
		{"Observation", nil, false},
	} {
		if got := MaxOne(tt.typ, tt.path...); got != tt.want {
			t.Errorf("MaxOne(%s, %v) = %v, want %v", tt.typ, tt.path, got, tt.want)
		}
	}
}
