package search

import (
	"strings"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/store"
)

// A range is usually asked as two clauses on one parameter,
// date=ge2019-03-01&date=lt2019-04-01 or value-quantity=gt5&value-quantity=lt10.
// Alone, each bound is covered by the buckets of a half-open range
// (everything after March 2019; everything before April), whose postings
// are most of the store, and intersecting them costs a probe per candidate.
// When the parameter gives a resource at most one value, the candidates of
// the clauses are those of their intersection: a value (a point, or for
// dates an interval) that meets each clause's range, where those ranges
// meet each other, meets all of them at once (Helly's theorem in one
// dimension). narrowRanges then covers the first such clause by the
// buckets of the intersection, one month here, and lets the others add no
// token group; every clause's exact check still runs on each candidate. A
// parameter that can give several values (Composition.period: one per
// event) keeps its clauses as they are, since one value may meet one bound
// and another value the other.

// narrowRanges applies the above to each date, number and quantity
// parameter of pl with two or more one-value clauses.
func (e *Engine) narrowRanges(pl *plan) {
	byParam := map[string][]int{}
	for i, c := range pl.clauses {
		if (c.span != nil || c.nums != nil) && !c.neg {
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
		var keys [][]string
		if pl.clauses[idx[0]].span != nil {
			keys = dateIntersection(pl.clauses, idx)
		} else {
			keys = numIntersection(pl.clauses, idx)
		}
		if keys == nil {
			continue // the ranges do not all meet: nothing to narrow to
		}
		toks := make([]store.Token, 0, len(keys))
		for _, k := range keys {
			toks = append(toks, e.tok(pl.typ, code, k[0], k[1:]...))
		}
		pl.clauses[idx[0]].toks = toks
		for _, i := range idx[1:] {
			pl.clauses[i].covered = true
		}
	}
}

// dateIntersection returns the token inputs covering the intersection of
// the date clauses' spans, nil when they do not all meet.
func dateIntersection(cs []clause, idx []int) [][]string {
	lo, hi := cs[idx[0]].span[0], cs[idx[0]].span[1]
	for _, i := range idx[1:] {
		if cs[i].span == nil {
			return nil
		}
		lo, hi = maxTime(lo, cs[i].span[0]), minTime(hi, cs[i].span[1])
	}
	if hi.Before(lo) {
		return nil
	}
	return bucketKeys(kDate, dateCover(lo, hi))
}

// numIntersection returns the token inputs covering the intersection of
// the number clauses' ranges, nil when they do not all meet.
func numIntersection(cs []clause, idx []int) [][]string {
	lo, hi := cs[idx[0]].nums[0], cs[idx[0]].nums[1]
	for _, i := range idx[1:] {
		if cs[i].nums == nil {
			return nil
		}
		lo, hi = max(lo, cs[i].nums[0]), min(hi, cs[i].nums[1])
	}
	if hi < lo {
		return nil
	}
	return bucketKeys(kNum, numCover(lo, hi))
}

// singleValued reports whether p gives a typ resource at most one value:
// every branch of its expression that applies to typ selects the same
// plain path (Observation.effective, Resource.meta.lastUpdated), at most
// cast to a type ((Condition.onset as dateTime), Condition.onset.as(Period):
// one choice element holds one of its types), and every step of that path
// occurs at most once. Anything else (functions, filters, two paths) counts
// as possibly several values.
func singleValued(p *searchparam.Param, typ string) bool {
	var path string
	for _, br := range strings.Split(p.Expression, "|") {
		head, rest, ok := strings.Cut(uncast(strings.TrimSpace(br)), ".")
		if !ok || head != typ && head != "Resource" && head != "DomainResource" {
			if strings.Contains(br, typ+".") {
				return false // applies to typ in a form not read here
			}
			continue
		}
		if !plainPath(rest) || path != "" && rest != path {
			return false
		}
		path = rest
	}
	return path != "" && fhir.MaxOne(typ, strings.Split(path, ".")...)
}

// uncast returns a branch without a type cast around it: "(X as T)" and
// "X.as(T)" give X; any other branch is returned as it is.
func uncast(br string) string {
	if inner, ok := strings.CutPrefix(br, "("); ok {
		if inner, ok = strings.CutSuffix(inner, ")"); ok {
			if x, t, ok := strings.Cut(inner, " as "); ok && plainPath(t) {
				return strings.TrimSpace(x)
			}
		}
		return br
	}
	if i := strings.LastIndex(br, ".as("); i > 0 && strings.HasSuffix(br, ")") && plainPath(br[i+4:len(br)-1]) {
		return br[:i]
	}
	return br
}

// plainPath reports whether path is dot-separated names only.
func plainPath(path string) bool {
	if path == "" {
		return false
	}
	for _, name := range strings.Split(path, ".") {
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
