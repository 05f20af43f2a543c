package main

// The queries of the search suite. Values are picked from the model (so
// the suite follows the data), and each case's answer is computed by its
// match function over the raw resources.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// suite builds the cases; now is the reference time of ap.
type suite struct {
	t     *testing.T
	m     *model
	now   time.Time
	cases []*searchCase
}

func (s *suite) add(cat, typ, q string, match func(*res) bool) *searchCase {
	c := &searchCase{cat: cat, typ: typ, q: q, match: match}
	s.cases = append(s.cases, c)
	return c
}

// first returns the first resource of typ (in id order) that f accepts.
func (s *suite) first(typ string, f func(*res) bool) *res {
	s.t.Helper()
	for _, r := range s.m.byType[typ] {
		if f(r) {
			return r
		}
	}
	s.t.Fatalf("no %s in the data fits the case", typ)
	return nil
}

func (s *suite) where(typ string, f func(*res) bool) []*res {
	var out []*res
	for _, r := range s.m.byType[typ] {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}

// keys returns the set of keys of rs.
func keySet(rs []*res) map[string]bool {
	out := map[string]bool{}
	for _, r := range rs {
		out[r.key()] = true
	}
	return out
}

func refIn(r *res, path string, set map[string]bool) bool {
	for _, x := range refs(r, path) {
		if set[x] {
			return true
		}
	}
	return false
}

// Parameter evaluators, one per R4 parameter the suite uses, after the
// R4 SearchParameter expressions.
func pName(r *res) []string    { return nameParts(r, "name") }
func pFamily(r *res) []string  { return strs(r.body, "name.family") }
func pGiven(r *res) []string   { return strs(r.body, "name.given") }
func pAddr(r *res) []string    { return nameParts(r, "address") }
func pCity(r *res) []string    { return strs(r.body, "address.city") }
func pBirth(r *res) []span     { return spans(r, "birthDate") }
func obsDate(r *res) []span    { return spans(r, "effectiveDateTime", "effectivePeriod") }
func obsValue(r *res) []qty    { return quantities(r, "valueQuantity") }
func obsCode(r *res) []coding  { return codings(r, "code") }
func encDate(r *res) []span    { return spans(r, "period") }
func condOnset(r *res) []span  { return spans(r, "onsetDateTime", "onsetPeriod") }
func orgName(r *res) []string  { return append(strs(r.body, "name"), strs(r.body, "alias")...) }
func pSubject(r *res) []string { return refs(r, "subject") }

// deceased is Patient.deceased.exists() and Patient.deceased != false.
func deceased(r *res) string {
	if b, ok := r.body["deceasedBoolean"].(bool); ok {
		return fmt.Sprint(b)
	}
	if _, ok := r.body["deceasedDateTime"]; ok {
		return "true"
	}
	return "false"
}

// phones are the values of Patient.telecom.where(system='phone').
func phones(r *res) []coding {
	var out []coding
	for _, tc := range at(r.body, "telecom") {
		if str1(tc, "system") == "phone" {
			out = append(out, coding{code: str1(tc, "value")})
		}
	}
	return out
}

// compositeQty is a composite of a token and a quantity evaluated per
// root (the Observation, or each component): both must hold on the same
// root.
func compositeQty(r *res, roots, tok, q string) bool {
	code, val, _ := strings.Cut(q, "$")
	for _, root := range at(r.body, roots) {
		rr := &res{body: map[string]any{"x": root}}
		if tokenMatch(codings(rr, "x.code"), "", code) && qtyMatch(quantities(rr, "x.valueQuantity"), val) {
			return true
		}
	}
	return false
}

// dateOrder orders by a date parameter: ascending by each resource's
// earliest start, descending by its latest end; resources without a value
// last.
func dateOrder(f func(*res) []span, desc bool) func(a, b *res) int {
	key := func(r *res) (time.Time, bool) {
		vs := f(r)
		if len(vs) == 0 {
			return time.Time{}, false
		}
		k := vs[0]
		for _, v := range vs {
			if v.lo.Before(k.lo) {
				k.lo = v.lo
			}
			if v.hi.After(k.hi) {
				k.hi = v.hi
			}
		}
		if desc {
			return k.hi, true
		}
		return k.lo, true
	}
	return func(a, b *res) int {
		ka, oka := key(a)
		kb, okb := key(b)
		switch {
		case !oka || !okb:
			return cmpMissing(oka, okb)
		case desc:
			return kb.Compare(ka)
		}
		return ka.Compare(kb)
	}
}

// stringOrder orders by a string parameter's folded text: ascending by the
// smallest value, descending by the largest; no value last.
func stringOrder(f func(*res) []string, desc bool) func(a, b *res) int {
	key := func(r *res) (string, bool) {
		vs := f(r)
		if len(vs) == 0 {
			return "", false
		}
		folded := make([]string, len(vs))
		for i, v := range vs {
			folded[i] = fold(v)
		}
		if desc {
			return slices.Max(folded), true
		}
		return slices.Min(folded), true
	}
	return func(a, b *res) int {
		ka, oka := key(a)
		kb, okb := key(b)
		switch {
		case !oka || !okb:
			return cmpMissing(oka, okb)
		case desc:
			return cmp.Compare(kb, ka)
		}
		return cmp.Compare(ka, kb)
	}
}

func cmpMissing(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// then orders by a, then by b.
func then(a, b func(x, y *res) int) func(x, y *res) int {
	return func(x, y *res) int {
		if c := a(x, y); c != 0 {
			return c
		}
		return b(x, y)
	}
}

// searchCases builds the suite over m.
func searchCases(t *testing.T, m *model, now time.Time, base string) *suite {
	s := &suite{t: t, m: m, now: now}
	s.stringCases()
	s.tokenCases()
	s.referenceCases(base)
	s.dateCases()
	s.quantityCases()
	s.otherTypeCases()
	s.chainCases()
	s.includeSortCases()
	return s
}
