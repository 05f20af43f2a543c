package union

import "testing"

func TestForBase(t *testing.T) {
	expr := "AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | (Observation.value as Quantity) | Observation.x.where(a = 'b|c')"
	tests := []struct{ base, want string }{
		{"AllergyIntolerance", "AllergyIntolerance.patient"},
		{"CarePlan", "CarePlan.subject.where(resolve() is Patient)"},
		{"Observation", "(Observation.value as Quantity) | Observation.x.where(a = 'b|c')"},
		{"Patient", ""},
	}
	for _, tc := range tests {
		if got := ForBase(expr, tc.base); got != tc.want {
			t.Errorf("ForBase(%s) = %q, want %q", tc.base, got, tc.want)
		}
	}
	if got := ForBase("Resource.id", "Patient"); got != "Resource.id" {
		t.Errorf("Resource root dropped: %q", got)
	}
}
