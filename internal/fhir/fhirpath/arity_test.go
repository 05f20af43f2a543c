package fhirpath

import "testing"

// TestMissingArguments: a function called without the argument it needs is
// an evaluation error, never a panic (found by FuzzParse).
func TestMissingArguments(t *testing.T) {
	res := decode(t, obsJSON)
	for _, src := range []string{"where()", "code.select()", "skip()", "take()", "subsetOf()", "supersetOf()",
		"union()", "intersect()", "exclude()", "combine()", "extension()", "hasExtension()", "code.skip()",
		"code.union()", "code.coding.subsetOf()", "code.extension()", "code.where()", "iif()", "ofType()"} {
		e, err := Parse(src)
		if err != nil {
			continue // refused already by the parser
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", src, r)
				}
			}()
			if _, err := e.Evaluate(res, nil); err == nil {
				t.Errorf("%s: evaluated without an error", src)
			}
		}()
	}
}
