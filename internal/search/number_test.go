package search

import (
	"testing"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// TestExactNumbers: number and quantity comparisons are exact decimals with
// the query's implied precision, also where float64 cannot tell the bounds
// from the value.
func TestExactNumbers(t *testing.T) {
	for _, c := range []struct {
		op, q, v string
		want     bool
	}{
		{"eq", "86.25100085755787", "86.25100085755787", true},
		{"ne", "86.25100085755787", "86.25100085755787", false},
		{"eq", "86.25100085755787", "86.25100085755788", false},
		{"eq", "100", "99.5", true},
		{"eq", "100", "100.5", false},
		{"eq", "100", "99.4999999999999999999", false},
		{"eq", "1e2", "95", true},
		{"eq", "1e2", "150", false},
		{"eq", "0.1", "0.05", true},
		{"eq", "0.1", "0.15", false},
		{"gt", "0.1", "0.1000000000000000001", true},
		{"ge", "0.3", "0.3", true},
		{"lt", "-2", "-2.0000001", true},
		{"le", "5", "5.00", true},
		{"ap", "100", "110", true},
		{"ap", "100", "110.0001", false},
	} {
		n, ok := parseNumber(c.q)
		if !ok {
			t.Fatalf("%s: not parsed", c.q)
		}
		if got := n.test(c.op, ratOf(searchparam.Value{Number: c.v})); got != c.want {
			t.Errorf("%s%s against %s: %v, want %v", c.op, c.q, c.v, got, c.want)
		}
	}
}
