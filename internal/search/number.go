package search

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// number is a search number (number and quantity parameters). Values are
// compared exactly, as decimals: float64 cannot hold every value FHIR data
// carries (86.25100085755787 has more digits than a float64 resolves at
// that magnitude, so x-half and x+half would round back to x and eq would
// match nothing). The float form only chooses the magnitude buckets.
type number struct {
	f, half float64 // the value and half its implied precision, for the buckets
	// x, and the ranges eq (lo <= v < hi) and ap (apLo <= v <= apHi) test.
	x, lo, hi, apLo, apHi *big.Rat
}

// parseNumber parses a search number. Its implied precision is half a unit
// of its last written digit: 100 means [99.5, 100.5), 1e2 [50, 150).
func parseNumber(s string) (number, bool) {
	if s == "" || len(s) > 64 || strings.ContainsAny(s, "xXpP_/") {
		return number{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return number{}, false
	}
	x, ok := new(big.Rat).SetString(s)
	if !ok {
		return number{}, false
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	scale := 0
	if _, frac, ok := strings.Cut(mant, "."); ok {
		scale = len(frac)
	}
	if hasExp {
		n, err := strconv.Atoi(exp)
		if err != nil {
			return number{}, false
		}
		scale -= n
	}
	pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(scale, -scale))), nil))
	half := big.NewRat(1, 2)
	if scale >= 0 {
		half.Quo(half, pow)
	} else {
		half.Mul(half, pow)
	}
	d := new(big.Rat).Abs(x) // ap: 10% of the value, at least its precision
	d.Quo(d, big.NewRat(10, 1))
	if d.Cmp(half) < 0 {
		d.Set(half)
	}
	return number{f: f, half: 0.5 * math.Pow10(-scale), x: x,
		lo: new(big.Rat).Sub(x, half), hi: new(big.Rat).Add(x, half),
		apLo: new(big.Rat).Sub(x, d), apHi: new(big.Rat).Add(x, d)}, true
}

// test compares the value v with n under the prefix op.
func (n number) test(op string, v *big.Rat) bool {
	switch op {
	case "eq":
		return v.Cmp(n.lo) >= 0 && v.Cmp(n.hi) < 0
	case "ne":
		return !(v.Cmp(n.lo) >= 0 && v.Cmp(n.hi) < 0)
	case "gt", "sa":
		return v.Cmp(n.x) > 0
	case "lt", "eb":
		return v.Cmp(n.x) < 0
	case "ge":
		return v.Cmp(n.x) >= 0
	case "le":
		return v.Cmp(n.x) <= 0
	case "ap":
		return v.Cmp(n.apLo) >= 0 && v.Cmp(n.apHi) <= 0
	}
	return false
}

// span is the range, as floats for the buckets, that holds every value op
// may match; false for ne (every value).
func (n number) span(op string) (lo, hi float64, ok bool) {
	inf := math.Inf(1)
	switch op {
	case "eq":
		return n.f - n.half, n.f + n.half, true
	case "gt", "sa", "ge":
		return n.f, inf, true
	case "lt", "eb", "le":
		return -inf, n.f, true
	case "ap":
		d := math.Max(math.Abs(n.f)/10, n.half)
		return n.f - d, n.f + d, true
	}
	return 0, 0, false
}

// keys are the magnitude buckets that hold every value op may match; nil
// (every candidate) for ne.
func (n number) keys(op string) [][]string {
	lo, hi, ok := n.span(op)
	if !ok {
		return nil
	}
	return bucketKeys(kNum, numCover(lo, hi))
}

// ratOf is a value's number exactly as written (its decimal text), or its
// float when no text was kept.
func ratOf(v searchparam.Value) *big.Rat {
	if v.Number != "" {
		if r, ok := new(big.Rat).SetString(v.Number); ok {
			return r
		}
	}
	r := new(big.Rat)
	if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
		return r
	}
	return r.SetFloat64(v.Float)
}
