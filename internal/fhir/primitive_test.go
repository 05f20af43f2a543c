package fhir

import (
	"regexp"
	"strings"
	"testing"
)

// TestFastPatterns checks the hand-written code and id checks against the R4 regexes on
// every string of up to 4 characters over an alphabet of the interesting characters, plus
// length boundaries.
func TestFastPatterns(t *testing.T) {
	s := loadSpec()
	codeRe, idRe := s.types["code"].re, s.types["id"].re
	alphabet := []string{"a", "Z", "0", "-", ".", " ", "\t", "\n", "\f", "\r", "\v", "_", "é", "\u00a0"}
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		if isCode(prefix) != codeRe.MatchString(prefix) {
			t.Errorf("isCode(%q) = %v, regex disagrees", prefix, isCode(prefix))
		}
		if IsID(prefix) != idRe.MatchString(prefix) {
			t.Errorf("IsID(%q) = %v, regex disagrees", prefix, IsID(prefix))
		}
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 4)
	for _, n := range []int{63, 64, 65} {
		id := strings.Repeat("a", n)
		if IsID(id) != idRe.MatchString(id) {
			t.Errorf("isID of length %d disagrees with the regex", n)
		}
	}
}

// TestIsID: the cases policy/care's own check was held to before it
// became IsID (separators, control bytes and non-ASCII letters refused).
func TestIsID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"p1", true}, {"A-b.9", true}, {strings.Repeat("x", 64), true},
		{"", false}, {strings.Repeat("x", 65), false}, {"a b", false}, {"a/b", false},
		{"a,b", false}, {"a_b", false}, {"é", false}, {"a\x00", false}, {"p1\n", false},
	} {
		if got := IsID(tc.id); got != tc.want {
			t.Errorf("IsID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// FuzzIsID: IsID accepts exactly the strings of the R4 id syntax (every
// request's id, reference and patient launch context goes through it).
func FuzzIsID(f *testing.F) {
	idRe := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	for _, s := range []string{"p1", "", "a b", "a_b", strings.Repeat("y", 64), strings.Repeat("y", 65), "é", "p1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsID(s), idRe.MatchString(s); got != want {
			t.Fatalf("IsID(%q) = %v, the R4 id syntax says %v", s, got, want)
		}
	})
}
