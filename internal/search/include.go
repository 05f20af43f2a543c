package search

import (
	"context"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// maxIncluded bounds the resources _include and _revinclude add to a page.
const maxIncluded = 1000

// includes resolves _include and _revinclude for a page: one round over
// the matches, then further rounds of the :iterate ones over what the
// previous round added.
func (e *Engine) includes(ctx context.Context, pl *plan, page []hit) ([]records.Entry, error) {
	if len(pl.include)+len(pl.revinclude) == 0 || len(page) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var round []hit
	for _, h := range page {
		seen[pl.typ+"/"+h.id] = true
		if h.vals == nil {
			res, err := parseJSON(h.ent.Body)
			if err != nil {
				return nil, err
			}
			if h.vals, err = e.params().Extract(res); err != nil {
				return nil, err
			}
		}
		round = append(round, h)
	}
	var out []records.Entry
	for iter := 0; iter < 4 && len(round) > 0 && len(out) < maxIncluded; iter++ {
		var next []hit
		add := func(es []records.Entry) error {
			for i := range es {
				k := es[i].Type + "/" + es[i].ID
				if seen[k] || len(out) >= maxIncluded {
					continue
				}
				seen[k] = true
				// A hidden resource is neither included nor followed by
				// :iterate, so no path through it shows.
				if pl.visible != nil && !pl.visible(ctx, es[i]) {
					continue
				}
				res, err := parseJSON(es[i].Body)
				if err != nil {
					return err
				}
				vals, err := e.params().Extract(res)
				if err != nil {
					return err
				}
				out = append(out, es[i])
				next = append(next, hit{id: es[i].ID, ent: &es[i], vals: vals})
			}
			return nil
		}
		for _, in := range pl.include {
			if iter > 0 && !in.iterate {
				continue
			}
			byType := map[string][]string{}
			for _, h := range round {
				if h.ent.Type != in.source {
					continue
				}
				for _, v := range h.vals {
					if v.Type != searchparam.Reference || (in.param != "*" && v.Param != in.param) {
						continue
					}
					if t := v.Ref.Type; v.Ref.ID != "" && v.Ref.Base == "" && (in.target == "" || in.target == t) && !seen[t+"/"+v.Ref.ID] {
						byType[t] = append(byType[t], v.Ref.ID)
					}
				}
			}
			for t, ids := range byType {
				if !e.params().IsResourceType(t) {
					continue
				}
				es, err := e.rec.ReadMany(ctx, t, dedupe(ids))
				if err != nil {
					return nil, err
				}
				if err := add(es); err != nil {
					return nil, err
				}
			}
		}
		for _, in := range pl.revinclude {
			if iter > 0 && !in.iterate {
				continue
			}
			var g []store.Token
			for _, h := range round {
				if in.target == "" || in.target == h.ent.Type {
					g = append(g, e.tok(in.source, in.param, kRef, h.ent.Type+"/"+h.id))
				}
			}
			if len(g) == 0 {
				continue
			}
			ids, err := e.rec.Match(ctx, store.MatchQuery{Type: in.source, All: [][]store.Token{g}, Limit: maxIncluded})
			if err != nil {
				return nil, err
			}
			es, err := e.rec.ReadMany(ctx, in.source, ids)
			if err != nil {
				return nil, err
			}
			if err := add(es); err != nil {
				return nil, err
			}
		}
		round = next
	}
	return out, nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
