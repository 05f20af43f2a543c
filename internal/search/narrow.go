package search

import (
	"strings"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/store"
)

// A date range is usually asked as two clauses on one parameter,
// date=ge2019-03-01&date=lt2019-04-01. Alone, each bound is covered by the
// buckets of a half-open range (everything after March 2019; everything
// before April), whose postings are most of the store, and intersecting
// them costs a probe per candidate. When the parameter gives a resource at
// most one value, the candidates of the two clauses are those of their
// intersection: a value (one interval) that intersects each clause's range,
// where those ranges intersect each other, intersects all of them at once
// (Helly's theorem in one dimension). narrowDates then covers the first such
// clause by the buckets of the intersection, one month here, and lets the
// others add no token group; every clause's exact check still runs on each
// candidate. A parameter that can give several values (Composition.period:
// one per event) keeps its clauses as they are, since one value may meet
// one bound and another value the other.

// narrowDates applies the above to each date parameter of pl with two or
// more one-value clauses.
func (e *Engine) narrowDates(pl *plan) {
	byParam := map[string][]int{}
	for i, c := range pl.clauses {
		if c.date && c.span != nil && !c.neg {
			byParam[c.param] = append(byParam[c.param], i)
		}
	}
	for code, idx := range byParam {
		if len(idx) < 2 {
			continue
		}
		p, ok := e.params().Lookup(pl.typ, code)
		if !ok || !singleValued(p, pl.typ) {
			continue
		}
		lo, hi := pl.clauses[idx[0]].span[0], pl.clauses[idx[0]].span[1]
		for _, i := range idx[1:] {
			lo, hi = maxTime(lo, pl.clauses[i].span[0]), minTime(hi, pl.clauses[i].span[1])
		}
		if hi.Before(lo) {
			continue // the ranges do not all meet: nothing to narrow to
		}
		var toks []store.Token
		for _, b := range dateCover(lo, hi) {
			toks = append(toks, e.tok(pl.typ, code, kDate, b))
		}
		pl.clauses[idx[0]].toks = toks
		for _, i := range idx[1:] {
			pl.clauses[i].covered = true
		}
	}
}

// singleValued reports whether p gives a typ resource at most one value:
// exactly one branch of its expression applies to typ, and it is a plain
// path (Observation.effective, Resource.meta.lastUpdated) whose every step
// occurs at most once. Anything else (functions, casts, unions on typ)
// counts as possibly several values.
func singleValued(p *searchparam.Param, typ string) bool {
	var path []string
	for _, br := range strings.Split(p.Expression, "|") {
		br = strings.TrimSpace(br)
		head, rest, _ := strings.Cut(strings.TrimLeft(br, "( "), ".")
		if head != typ && head != "Resource" && head != "DomainResource" {
			continue
		}
		if path != nil || !plainPath(br, rest) {
			return false
		}
		path = strings.Split(rest, ".")
	}
	return path != nil && fhir.MaxOne(typ, path...)
}

// plainPath reports whether branch is its head followed by rest, rest
// being dot-separated element names only.
func plainPath(branch, rest string) bool {
	if rest == "" || !strings.HasSuffix(branch, "."+rest) || strings.HasPrefix(branch, "(") {
		return false
	}
	for _, name := range strings.Split(rest, ".") {
		if name == "" {
			return false
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
				return false
			}
		}
	}
	return true
}
