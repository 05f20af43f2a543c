package fhir

import (
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
		if isID(prefix) != idRe.MatchString(prefix) {
			t.Errorf("isID(%q) = %v, regex disagrees", prefix, isID(prefix))
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
		if isID(id) != idRe.MatchString(id) {
			t.Errorf("isID of length %d disagrees with the regex", n)
		}
	}
}
