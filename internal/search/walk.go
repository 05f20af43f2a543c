package search

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/store"
)

// Sorting by a date without decrypting every candidate. A date value is
// indexed under the year buckets it intersects (buckets.go), so one probe
// of the candidates' year tokens (store.Reader.Carried) tells, for each,
// the year of its sort key: the latest year it touches when sorting newest
// first (the key is the end of its latest interval), the earliest when
// sorting oldest first. Candidates are then decrypted a year at a time in
// sort order, and the walk stops once the page is full: every candidate
// not yet read has its key in a later year, so it sorts after every match
// read so far. Values indexed only as wider than maxYears ("W") have no
// year and are always read; candidates without the parameter sort last and
// are read only if the page reaches them. A cursor skips the years wholly
// before it. The page is what the full scan would give (TestDateWalk).

// yearRank orders the year groups: LO (before minYear) and HI (after
// maxYear) bracket the years.
const (
	rankLO = minYear - 1
	rankHI = maxYear + 1
)

// walkable reports whether the page can be computed by the year walk: a
// date leads the sort, the page goes forward, and no accurate total (which
// needs every match decided) is asked for.
func walkable(pl *plan, cur *cursor) bool {
	return len(pl.sort) > 0 && pl.sort[0].typ == searchparam.Date && pl.sort[0].param != "_id" &&
		(cur == nil || !cur.Prev) && pl.total != "accurate" && !pl.summaryCount
}

// yearTokens are the tokens of param's year buckets, LO and HI, and W, in
// that order: position i < 200 is year minYear+i. They are computed once
// per type and parameter and kept while the index key computes the same
// first token (a new index key computes them anew).
func (e *Engine) yearTokens(typ, param string) []store.Token {
	first := e.tok(typ, param, kDate, yKey(minYear))
	key := typ + "\x00" + param
	if c, ok := e.years.Load(key); ok {
		if toks := c.([]store.Token); bytes.Equal(toks[0], first) {
			return toks
		}
	}
	toks := e.computeYearTokens(typ, param)
	e.years.Store(key, toks)
	return toks
}

func (e *Engine) computeYearTokens(typ, param string) []store.Token {
	out := make([]store.Token, 0, maxYear-minYear+4)
	for y := minYear; y <= maxYear; y++ {
		out = append(out, e.tok(typ, param, kDate, yKey(y)))
	}
	return append(out, e.tok(typ, param, kDate, "LO"), e.tok(typ, param, kDate, "HI"), e.tok(typ, param, kDate, "W"))
}

// walk fills w with the page of pl after cur (see above) and returns the
// total when it is known: every match was decided, or the tokens alone
// decide and nothing is hidden.
func (e *Engine) walk(ctx context.Context, pl *plan, cur *cursor, w *window) (total int, hasTotal bool, err error) {
	ids, err := e.candidates(ctx, pl, "")
	if err != nil || len(ids) == 0 {
		return 0, true, err
	}
	n, all, err := e.walkIDs(ctx, pl, cur, w, ids)
	switch {
	case err != nil:
		return 0, false, err
	case all:
		return n, true, nil
	case pl.visible == nil && pl.tokensDecide():
		return len(ids), true, nil
	}
	return 0, false, nil
}

// walkIDs reads the candidates ids year by year into w. It returns the
// number of matches it decided and whether that is every match.
func (e *Engine) walkIDs(ctx context.Context, pl *plan, cur *cursor, w *window, ids []string) (n int, all bool, err error) {
	read := func(ids []string) error {
		return e.scanIDs(ctx, pl, ids, func(h hit) bool {
			n++
			w.add(h)
			return true
		})
	}
	if len(ids) <= pl.count+1 {
		// The page can hold every candidate, so the walk would read them
		// all whatever their years: asking for the years adds a probe.
		err := read(ids)
		return n, err == nil, err
	}
	k := pl.sort[0]
	among := e.yearTokens(pl.typ, k.param)
	var carried map[string][]int
	err = e.rec.Backend().View(ctx, func(r store.Reader) error {
		carried, err = r.Carried(pl.typ, ids, among)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	nYears := maxYear - minYear + 1
	groups := map[int][]string{} // rank -> ids, in id order
	var unknown, missing []string
	for _, id := range ids {
		pos, ok := carried[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		rank, has := 0, false
		for _, p := range pos {
			var r int
			switch {
			case p < nYears:
				r = minYear + p
			case p == nYears:
				r = rankLO
			case p == nYears+1:
				r = rankHI
			default:
				continue // W: no year from this value
			}
			if !has || (k.desc && r > rank) || (!k.desc && r < rank) {
				rank, has = r, true
			}
		}
		if !has || slices.Contains(pos, nYears+2) {
			// Only wide values, or a wide value beside dated ones: its
			// key may be in any year.
			unknown = append(unknown, id)
			continue
		}
		groups[rank] = append(groups[rank], id)
	}
	ranks := make([]int, 0, len(groups))
	for r := range groups {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	if k.desc {
		slices.Reverse(ranks)
	}
	// A cursor's key is in its own year or later in the order; the years
	// before it hold only matches before the cursor.
	if cur != nil && len(cur.Key) > 0 {
		if !cur.Key[0].Has {
			ranks = nil // past every dated match
		} else {
			cy := yearRankOf(cur.Key[0].T)
			ranks = slices.DeleteFunc(ranks, func(r int) bool { return (k.desc && r > cy) || (!k.desc && r < cy) })
		}
	}
	if err := read(unknown); err != nil {
		return n, false, err
	}
	skipped := len(ranks) < len(groups)
	for i := 0; i < len(ranks); {
		// Consecutive years are read together until they could fill the
		// page: one batch instead of one per sparse year.
		var batch []string
		for start := i; i < len(ranks) && (i == start || len(batch) <= pl.count); i++ {
			batch = append(batch, groups[ranks[i]]...)
		}
		if err := read(batch); err != nil {
			return n, false, err
		}
		// Only hits whose key is in the last year read or before it in
		// the order are final: a wide value read up front may have its
		// key in a year not read yet, with matches still to come before it.
		r, final := ranks[i-1], 0
		for _, h := range w.hits {
			if y := h.key[0]; y.Has && (yearRankOf(y.T) == r || (yearRankOf(y.T) > r) == k.desc) {
				final++
			}
		}
		if final > pl.count {
			return n, !skipped && i == len(ranks) && len(missing) == 0, nil
		}
	}
	if err := read(missing); err != nil {
		return n, false, err
	}
	return n, !skipped, nil
}

// yearRankOf is the group of a key in time t.
func yearRankOf(t time.Time) int {
	switch {
	case t.Before(rangeLow):
		return rankLO
	case t.After(rangeHigh):
		return rankHI
	}
	return t.Year()
}
