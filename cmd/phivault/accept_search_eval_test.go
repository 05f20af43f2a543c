package main

// The search suite's own evaluator: FHIR R4 search semantics over the raw
// JSON of the model, written from the specification (not from
// internal/search), so that the server is checked against it.

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// at walks a dotted path through objects, flattening arrays at every step.
func at(v any, path string) []any {
	cur := []any{v}
	if path == "" {
		return cur
	}
	for _, f := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			switch x := m[f].(type) {
			case nil:
			case []any:
				next = append(next, x...)
			default:
				next = append(next, x)
			}
		}
		cur = next
	}
	return cur
}

// strs returns the strings at path.
func strs(v any, path string) []string {
	var out []string
	for _, x := range at(v, path) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func str1(v any, path string) string {
	if s := strs(v, path); len(s) > 0 {
		return s[0]
	}
	return ""
}

// fold makes text case- and accent-insensitive: canonical decomposition,
// combining marks dropped, lower case.
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// nameParts are the strings of HumanNames (or Addresses) at path, as R4
// string search over a complex type sees them: every string part.
func nameParts(r *res, path string) []string {
	var out []string
	for _, n := range at(r.body, path) {
		for _, f := range []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country"} {
			out = append(out, strs(n, f)...)
		}
	}
	return out
}

// strMatch is R4 string search: default starts-with, :exact, :contains;
// a comma list is an OR.
func strMatch(vals []string, mod, q string) bool {
	for _, alt := range strings.Split(q, ",") {
		for _, v := range vals {
			switch mod {
			case "":
				if strings.HasPrefix(fold(v), fold(alt)) {
					return true
				}
			case "exact":
				if v == alt {
					return true
				}
			case "contains":
				if strings.Contains(fold(v), fold(alt)) {
					return true
				}
			}
		}
	}
	return false
}

// coding is one token value: a Coding, an Identifier (code = value) or a
// primitive code (no system).
type coding struct{ system, code, display, text, typeSystem, typeCode string }

// codings returns the token values of the CodeableConcepts, Codings or
// codes at path.
func codings(r *res, path string) []coding {
	var out []coding
	for _, x := range at(r.body, path) {
		switch x := x.(type) {
		case string:
			out = append(out, coding{code: x})
		case bool:
			out = append(out, coding{code: strconv.FormatBool(x)})
		case map[string]any:
			if cs, ok := x["coding"].([]any); ok {
				for _, c := range cs {
					out = append(out, coding{system: str1(c, "system"), code: str1(c, "code"), display: str1(c, "display"), text: str1(x, "text")})
				}
				continue
			}
			out = append(out, coding{system: str1(x, "system"), code: str1(x, "code"), display: str1(x, "display"), text: str1(x, "text")})
		}
	}
	return out
}

// identifiers returns the Identifiers at path as token values.
func identifiers(r *res, path string) []coding {
	var out []coding
	for _, x := range at(r.body, path) {
		out = append(out, coding{system: str1(x, "system"), code: str1(x, "value"), text: str1(x, "type.text"),
			typeSystem: str1(x, "type.coding.system"), typeCode: str1(x, "type.coding.code")})
	}
	return out
}

// tokenMatch is R4 token search of one value list: code, system|code,
// |code, system|, with :text (starts-with on display or text) and
// :of-type; :not is the caller's negation. A comma list is an OR.
func tokenMatch(vals []coding, mod, q string) bool {
	for _, alt := range strings.Split(q, ",") {
		for _, v := range vals {
			if tokenOne(v, mod, alt) {
				return true
			}
		}
	}
	return false
}

func tokenOne(v coding, mod, q string) bool {
	switch mod {
	case "text":
		return strings.HasPrefix(fold(v.display), fold(q)) || strings.HasPrefix(fold(v.text), fold(q))
	case "of-type":
		p := strings.Split(q, "|")
		return v.typeSystem == p[0] && v.typeCode == p[1] && v.code == p[2]
	}
	sys, code, bar := strings.Cut(q, "|")
	switch {
	case !bar:
		return v.code == q
	case sys == "":
		return v.system == "" && v.code == code
	case code == "":
		return v.system == sys
	}
	return v.system == sys && v.code == code
}

// refs returns the references at path (stored Type/id after loadModel).
func refs(r *res, path string) []string { return strs(r.body, path+".reference") }

func hasRef(r *res, path string, want ...string) bool {
	for _, x := range refs(r, path) {
		for _, w := range want {
			if x == w {
				return true
			}
		}
	}
	return false
}

// span is the closed interval a date, dateTime or Period denotes.
type span struct{ lo, hi time.Time }

var (
	timeMin = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	timeMax = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// parseSpan reads a FHIR date/dateTime/instant as the interval of its
// precision: "2013" is the year, "2013-01-05" the day, a dateTime with
// seconds the second (with fractions, the last fraction digit's unit).
func parseSpan(s string) (span, bool) {
	var layout string
	var end func(time.Time) time.Time
	switch {
	case len(s) == 4:
		layout, end = "2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case len(s) == 7:
		layout, end = "2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case len(s) == 10:
		layout, end = "2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	default:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return span{}, false
		}
		unit := time.Second
		if i := strings.IndexByte(s, '.'); i > 0 {
			digits := 0
			for _, c := range s[i+1:] {
				if c < '0' || c > '9' {
					break
				}
				digits++
			}
			unit = time.Duration(math.Pow10(9 - digits))
		}
		t = t.UTC()
		return span{t, t.Add(unit - 1)}, true
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return span{}, false
	}
	return span{t, end(t).Add(-1)}, true
}

// spans returns the intervals of the dates, dateTimes and Periods at the
// given paths; a Period without end runs to the end of time.
func spans(r *res, paths ...string) []span {
	var out []span
	for _, p := range paths {
		for _, x := range at(r.body, p) {
			switch x := x.(type) {
			case string:
				if s, ok := parseSpan(x); ok {
					out = append(out, s)
				}
			case map[string]any:
				sp := span{timeMin, timeMax}
				st, hasS := x["start"].(string)
				en, hasE := x["end"].(string)
				if !hasS && !hasE {
					continue
				}
				if hasS {
					s, _ := parseSpan(st)
					sp.lo = s.lo
				}
				if hasE {
					s, _ := parseSpan(en)
					sp.hi = s.hi
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

// dateMatch is R4 date search with a prefix over a list of values (any
// value may match). ap follows docs/search.md: the search range widened
// on both sides by 10% of its distance from now (at least a day) must
// intersect the value.
func dateMatch(vals []span, q string, now time.Time) bool {
	for _, alt := range strings.Split(q, ",") {
		op, v := prefixOf(alt)
		s, ok := parseSpan(v)
		if !ok {
			panic("bad date in a test case: " + alt)
		}
		for _, t := range vals {
			if dateOne(op, s, t, now) {
				return true
			}
		}
	}
	return false
}

func dateOne(op string, s, t span, now time.Time) bool {
	within := !t.lo.Before(s.lo) && !t.hi.After(s.hi)
	switch op {
	case "eq":
		return within
	case "ne":
		return !within
	case "gt": // the range above the search value overlaps the target
		return t.hi.After(s.hi)
	case "lt":
		return t.lo.Before(s.lo)
	case "ge":
		return t.hi.After(s.hi) || within
	case "le":
		return t.lo.Before(s.lo) || within
	case "sa": // the target starts after the search range ends
		return t.lo.After(s.hi)
	case "eb":
		return t.hi.Before(s.lo)
	case "ap":
		d := now.Sub(s.lo)
		if d < 0 {
			d = -d
		}
		d = max(d/10, 24*time.Hour)
		return !t.hi.Before(s.lo.Add(-d)) && !t.lo.After(s.hi.Add(d))
	}
	panic("unknown prefix " + op)
}

func prefixOf(v string) (string, string) {
	if len(v) > 2 {
		switch v[:2] {
		case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap":
			return v[:2], v[2:]
		}
	}
	return "eq", v
}

// qty is a Quantity value, its number kept exact.
type qty struct {
	value              *big.Rat
	system, code, unit string
}

func quantities(r *res, path string) []qty {
	var out []qty
	for _, x := range at(r.body, path) {
		num, ok := x.(map[string]any)["value"].(json.Number)
		if !ok {
			continue
		}
		f, ok := new(big.Rat).SetString(string(num))
		if !ok {
			continue
		}
		out = append(out, qty{f, str1(x, "system"), str1(x, "code"), str1(x, "unit")})
	}
	return out
}

// qtyMatch is R4 quantity search: [prefix]number[|system|code]; the
// number has the implicit range of its precision for eq/ne; system|code
// must match when given (||code matches the code or the unit).
func qtyMatch(vals []qty, q string) bool {
	for _, alt := range strings.Split(q, ",") {
		op, rest := prefixOf(alt)
		parts := strings.Split(rest, "|")
		x, half := numRange(parts[0])
		for _, v := range vals {
			if len(parts) == 3 {
				if parts[1] != "" && v.system != parts[1] {
					continue
				}
				if parts[2] != "" && v.code != parts[2] && !(parts[1] == "" && v.unit == parts[2]) {
					continue
				}
			}
			if numOne(op, x, half, v.value) {
				return true
			}
		}
	}
	return false
}

// numRange parses a search number: its value and half its precision
// ("100" is [99.5, 100.5), "100.0" is [99.95, 100.05)), exactly.
func numRange(s string) (x, half *big.Rat) {
	x, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("bad number in a test case: " + s)
	}
	scale := int64(0)
	if _, frac, ok := strings.Cut(s, "."); ok {
		scale = int64(len(frac))
	}
	half = new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Mul(big.NewInt(2), new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil)))
	return x, half
}

// numOne is R4 number comparison of the value v with the search number x
// of precision half, in exact decimal arithmetic.
func numOne(op string, x, half, v *big.Rat) bool {
	lo, hi := new(big.Rat).Sub(x, half), new(big.Rat).Add(x, half)
	in := v.Cmp(lo) >= 0 && v.Cmp(hi) < 0
	switch op {
	case "eq":
		return in
	case "ne":
		return !in
	case "gt", "sa":
		return v.Cmp(x) > 0
	case "lt", "eb":
		return v.Cmp(x) < 0
	case "ge":
		return v.Cmp(x) >= 0
	case "le":
		return v.Cmp(x) <= 0
	case "ap":
		d := new(big.Rat).Abs(x)
		d.Quo(d, big.NewRat(10, 1))
		if d.Cmp(half) < 0 {
			d = half
		}
		return v.Cmp(new(big.Rat).Sub(x, d)) >= 0 && v.Cmp(new(big.Rat).Add(x, d)) <= 0
	}
	panic("unknown prefix " + op)
}
