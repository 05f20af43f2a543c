package care

import (
	"regexp"
	"strings"
	"testing"
)

// idPattern is the FHIR id syntax validID implements.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"p1", true}, {"A-b.9", true}, {strings.Repeat("x", 64), true},
		{"", false}, {strings.Repeat("x", 65), false}, {"a b", false}, {"a/b", false},
		{"a,b", false}, {"a_b", false}, {"é", false}, {"a\x00", false}, {"p1\n", false},
	} {
		if got := validID(tc.id); got != tc.want || got != idPattern.MatchString(tc.id) {
			t.Errorf("validID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// FuzzValidID: validID accepts exactly the ids of the FHIR id syntax.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"p1", "", "a b", strings.Repeat("y", 65), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validID(s), idPattern.MatchString(s); got != want {
			t.Fatalf("validID(%q) = %v, the FHIR id syntax says %v", s, got, want)
		}
	})
}
