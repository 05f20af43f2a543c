package search

import (
	"context"
	"net/url"
	"slices"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

var (
	_ fhirapi.Searcher      = (*Engine)(nil)
	_ fhirapi.PagedSearcher = (*Engine)(nil)
	_ fhirapi.VisibleFinder = (*Engine)(nil)
)

// readBatch is how many candidates are decrypted per store read.
const readBatch = 64

// hit is one matching resource while a page is assembled.
type hit struct {
	id   string
	key  []sval
	ent  *records.Entry
	vals []searchparam.Value
}

// result is what run computes for a plan.
type result struct {
	page             []hit
	total            int
	hasTotal         bool
	hasNext, hasPrev bool
}

// Find implements fhirapi.Searcher: every match in id order, at most limit
// (0: all). check is a token query with the same answer when the query
// needs no exact filtering or exclusion.
func (e *Engine) Find(ctx context.Context, typ string, q url.Values, limit int) ([]string, *store.MatchQuery, error) {
	pl, err := e.parse(ctx, typ, q, parseOpts{})
	if err != nil {
		return nil, nil, err
	}
	ids, err := e.ids(ctx, pl, limit)
	if err != nil {
		return nil, nil, err
	}
	if pl.tokensDecide() {
		mq := pl.positive()
		return ids, &mq, nil
	}
	return ids, nil, nil
}

// FindVisible implements fhirapi.VisibleFinder: Find evaluated under
// visible (chains and _has see only visible resources; hidden matches are
// left out). Every candidate is decrypted and decided. check is returned
// only when the token query alone gives the answer, the scan saw every
// match and none was hidden.
func (e *Engine) FindVisible(ctx context.Context, typ string, q url.Values, limit int, visible fhirapi.Visibility) ([]string, *store.MatchQuery, error) {
	if visible == nil {
		return e.Find(ctx, typ, q, limit)
	}
	pl, err := e.parse(ctx, typ, q, parseOpts{visible: visible})
	if err != nil {
		return nil, nil, err
	}
	pl.visible = nil // decided below, to learn whether anything was hidden
	var ids []string
	hidden := false
	err = e.scan(ctx, pl, "", func(h hit) bool {
		if !visible(ctx, *h.ent) {
			hidden = true
			return true
		}
		ids = append(ids, h.id)
		return limit == 0 || len(ids) < limit
	})
	if err != nil {
		return nil, nil, err
	}
	if pl.tokensDecide() && !hidden && (limit == 0 || len(ids) < limit) {
		mq := pl.positive()
		return ids, &mq, nil
	}
	return ids, nil, nil
}

// ids returns all matches of pl in id order, at most limit (0: all).
func (e *Engine) ids(ctx context.Context, pl *plan, limit int) ([]string, error) {
	if pl.tokensDecide() && pl.visible == nil {
		mq := pl.positive()
		mq.Limit = limit
		return e.rec.Match(ctx, mq)
	}
	var out []string
	err := e.scan(ctx, pl, "", func(h hit) bool {
		out = append(out, h.id)
		return limit == 0 || len(out) < limit
	})
	return out, err
}

// tokensDecide reports whether the positive token groups alone give the
// answer (no exclusions, no exact checks).
func (pl *plan) tokensDecide() bool {
	for _, c := range pl.clauses {
		if c.neg || c.check != nil {
			return false
		}
	}
	return true
}

func (pl *plan) positive() store.MatchQuery {
	mq := store.MatchQuery{Type: pl.typ}
	for _, c := range pl.clauses {
		if !c.neg && !c.covered {
			mq.All = append(mq.All, c.toks)
		}
	}
	return mq
}

// candidates returns the ids (ascending, > after) that carry every
// positive group and no excluded token.
func (e *Engine) candidates(ctx context.Context, pl *plan, after string) ([]string, error) {
	mq := pl.positive()
	mq.After = after
	ids, err := e.rec.Match(ctx, mq)
	if err != nil || len(ids) == 0 {
		return ids, err
	}
	for _, c := range pl.clauses {
		if !c.neg {
			continue
		}
		nq := mq
		nq.All = append(slices.Clip(mq.All), c.toks)
		ex, err := e.rec.Match(ctx, nq)
		if err != nil {
			return nil, err
		}
		ids = subtract(ids, ex)
	}
	return ids, nil
}

// subtract removes the sorted list b from the sorted list a.
func subtract(a, b []string) []string {
	out := a[:0]
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			continue
		}
		out = append(out, x)
	}
	return out
}

// needsValues reports whether matches must be decrypted to decide or
// order them.
func (pl *plan) needsValues() bool {
	if !pl.tokensDecideChecks() {
		return true
	}
	for _, k := range pl.sort {
		if k.param != "_id" {
			return true
		}
	}
	return false
}

func (pl *plan) tokensDecideChecks() bool {
	for _, c := range pl.clauses {
		if c.check != nil {
			return false
		}
	}
	return true
}

// scan calls fn with every match of pl with id > after, in id order,
// decrypting candidates in batches, until fn returns false.
func (e *Engine) scan(ctx context.Context, pl *plan, after string, fn func(hit) bool) error {
	ids, err := e.candidates(ctx, pl, after)
	if err != nil {
		return err
	}
	return e.scanIDs(ctx, pl, ids, fn)
}

// scanIDs calls fn with every match of pl among the candidates ids, in
// their order, until fn returns false.
func (e *Engine) scanIDs(ctx context.Context, pl *plan, ids []string, fn func(hit) bool) error {
	values := pl.needsValues()
	for start := 0; start < len(ids); start += readBatch {
		es, err := e.rec.ReadMany(ctx, pl.typ, ids[start:min(start+readBatch, len(ids))])
		if err != nil {
			return err
		}
		for i := range es {
			if pl.visible != nil && !pl.visible(ctx, es[i]) {
				continue
			}
			// Without exact checks or value sort keys the tokens decided:
			// values are extracted later, if at all (_include, _has).
			h, ok := hit{id: es[i].ID, ent: &es[i], key: keyOf(pl.sort, es[i].ID, nil)}, true
			if values {
				if h, ok, err = e.decide(pl, &es[i]); err != nil {
					return err
				}
			}
			if ok && !fn(h) {
				return nil
			}
		}
	}
	return nil
}

// decide extracts an entry's values and applies the exact checks.
func (e *Engine) decide(pl *plan, en *records.Entry) (_ hit, _ bool, err error) {
	var vals []searchparam.Value
	partial := false
	if params, keep := pl.dateOnly(e); params != nil {
		// The values are remembered: the next page, or the next search of
		// the same patient, reads the same versions again.
		scope := dateScope{reg: e.params(), params: pl.dates.key}
		vals, err = e.dateMemo.Get(en.Type, en.ID, en.VID, en.Body, scope, func() ([]searchparam.Value, error) {
			res, err := parseMembers(en.Body, keep)
			if err != nil {
				return nil, err
			}
			return e.dateValues(pl.typ, params, res)
		})
		partial = true
	} else {
		var res map[string]any
		if res, err = parseJSON(en.Body); err != nil {
			return hit{}, false, err
		}
		vals, err = e.params().Extract(res)
	}
	if err != nil {
		return hit{}, false, err
	}
	for _, c := range pl.clauses {
		if c.check != nil && !c.check(vals) {
			return hit{}, false, nil
		}
	}
	h := hit{id: en.ID, ent: en, vals: vals, key: keyOf(pl.sort, en.ID, vals)}
	if partial {
		h.vals = nil // _include and _has extract in full
	}
	return h, true, nil
}

// window keeps the count+1 hits nearest a cursor in one direction.
type window struct {
	pl   *plan
	cur  *cursor
	hits []hit
}

func (w *window) cmp(a, b hit) int {
	c := cmpKeys(w.pl.sort, a.key, a.id, b.key, b.id)
	if w.cur != nil && w.cur.Prev {
		return -c
	}
	return c
}

// add offers h; it reports whether h lies beyond the cursor.
func (w *window) add(h hit) bool {
	if w.cur != nil && w.cmp(h, hit{id: w.cur.ID, key: w.cur.Key}) <= 0 {
		return false
	}
	w.hits = append(w.hits, h)
	if len(w.hits) > 2*(w.pl.count+1)+64 {
		w.trim()
	}
	return true
}

func (w *window) trim() {
	slices.SortFunc(w.hits, w.cmp)
	n := min(len(w.hits), w.pl.count+1)
	clear(w.hits[n:])
	w.hits = w.hits[:n]
}

// run computes the page of pl after (or before) cur.
func (e *Engine) run(ctx context.Context, pl *plan, cur *cursor) (result, error) {
	w := &window{pl: pl, cur: cur, hits: make([]hit, 0, max(0, min(pl.count+1, 256)))}
	var r result
	switch {
	case pl.visible == nil && !pl.needsValues() && pl.tokensDecide() && len(pl.sort) == 0 && (cur == nil || !cur.Prev):
		// Fast path: the store pages by id.
		mq := pl.positive()
		if cur != nil {
			mq.After = cur.ID
		}
		if !pl.summaryCount {
			mq.Limit = pl.count + 1
			ids, err := e.rec.Match(ctx, mq)
			if err != nil {
				return r, err
			}
			for _, id := range ids {
				w.hits = append(w.hits, hit{id: id})
			}
		}
		if pl.total != "none" {
			mq.After, mq.Limit = "", 0
			n, err := e.rec.Count(ctx, mq)
			if err != nil {
				return r, err
			}
			r.total, r.hasTotal = n, true
		}
	case pl.visible == nil && !pl.needsValues():
		ids, err := e.candidates(ctx, pl, "")
		if err != nil {
			return r, err
		}
		for _, id := range ids {
			w.add(hit{id: id, key: keyOf(pl.sort, id, nil)})
		}
		r.total, r.hasTotal = len(ids), true
	case walkable(pl, cur):
		var err error
		if r.total, r.hasTotal, err = e.walk(ctx, pl, cur, w); err != nil {
			return r, err
		}
	default:
		// Under visibility the total is counted over what the caller may
		// see, which takes a full scan: by default only the first page
		// pays for it (later pages have no total), _total=accurate makes
		// every page count, none and estimate make none.
		early := len(pl.sort) == 0 && (cur == nil || !cur.Prev) && pl.total != "accurate" && !pl.summaryCount &&
			(pl.visible == nil || pl.total == "none" || pl.total == "estimate" || cur != nil)
		after := ""
		if early && cur != nil {
			after = cur.ID
		}
		n, stopped := 0, false
		err := e.scan(ctx, pl, after, func(h hit) bool {
			n++
			w.add(h)
			stopped = early && len(w.hits) > pl.count
			return !stopped
		})
		if err != nil {
			return r, err
		}
		r.total, r.hasTotal = n, !early
		if pl.visible != nil && early && cur == nil && !stopped {
			// Under visibility a total is only ever what the scan saw;
			// a first page that holds every visible match has it exactly.
			r.hasTotal = true
		}
		if early && pl.total == "estimate" && pl.visible == nil {
			if c, err := e.rec.Count(ctx, pl.positive()); err == nil {
				r.total, r.hasTotal = c, true
			}
		}
	}
	if pl.summaryCount {
		return r, nil
	}
	w.trim()
	if cur != nil && cur.Prev {
		slices.Reverse(w.hits)
		r.hasPrev = len(w.hits) > pl.count
		if r.hasPrev {
			w.hits = w.hits[1:]
		}
		r.hasNext = true
	} else {
		r.hasNext = len(w.hits) > pl.count
		w.hits = w.hits[:min(len(w.hits), pl.count)]
		r.hasPrev = cur != nil
	}
	r.page = w.hits
	return r, e.fill(ctx, pl, r.page)
}

// fill reads the entries of hits that were paged by id alone.
func (e *Engine) fill(ctx context.Context, pl *plan, hits []hit) error {
	var need []string
	for _, h := range hits {
		if h.ent == nil {
			need = append(need, h.id)
		}
	}
	if len(need) == 0 {
		return nil
	}
	es, err := e.rec.ReadMany(ctx, pl.typ, need)
	if err != nil {
		return err
	}
	byID := make(map[string]*records.Entry, len(es))
	for i := range es {
		byID[es[i].ID] = &es[i]
	}
	for i := range hits {
		if hits[i].ent == nil {
			hits[i].ent = byID[hits[i].id] // nil: deleted since; dropped by the caller
		}
	}
	return nil
}
