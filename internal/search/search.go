package search

import (
	"context"
	"net/url"
	"slices"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/fhirapi"
)

// Search implements fhirapi.PagedSearcher: one page of matches in the
// requested order, the included resources, the total when it is known or
// asked for, and links that continue from a sealed cursor.
func (e *Engine) Search(ctx context.Context, req fhirapi.SearchRequest) (*fhirapi.SearchPage, error) {
	pl, err := e.parse(ctx, req.Type, req.Query, parseOpts{base: req.Base, lenient: req.Lenient, visible: req.Visible})
	if err != nil {
		return nil, err
	}
	pl.caller = []string{req.Caller.UserID, req.Caller.SessionID}
	cur, err := e.openCursor(ctx, pl)
	if err != nil {
		return nil, err
	}
	r, err := e.run(ctx, pl, cur)
	if err != nil {
		return nil, err
	}
	out := &fhirapi.SearchPage{Total: r.total, HasTotal: r.hasTotal && pl.total != "none",
		Ignored: pl.ignored, Warnings: pl.warnings}
	out.Self = link(pl.canon, pl.cursor)
	if pl.summaryCount {
		return out, nil
	}
	page := r.page[:0]
	out.Matches = slices.Grow(out.Matches, len(r.page))
	for _, h := range r.page {
		if h.ent != nil {
			page = append(page, h)
			out.Matches = append(out.Matches, *h.ent)
		}
	}
	if out.Includes, err = e.includes(ctx, pl, page); err != nil {
		return nil, err
	}
	if len(r.page) > 0 {
		first, last := r.page[0], r.page[len(r.page)-1]
		if r.hasNext {
			c, err := e.sealCursor(ctx, pl, cursor{Key: last.key, ID: last.id})
			if err != nil {
				return nil, err
			}
			out.Next = link(pl.canon, c)
		}
		if r.hasPrev {
			c, err := e.sealCursor(ctx, pl, cursor{Prev: true, Key: first.key, ID: first.id})
			if err != nil {
				return nil, err
			}
			out.Prev = link(pl.canon, c)
		}
	}
	return out, nil
}

func link(canon url.Values, cur string) string {
	q := url.Values{}
	for k, v := range canon {
		q[k] = v
	}
	if cur != "" {
		q.Set("_cursor", cur)
	}
	return q.Encode()
}

// Params implements fhirapi.SearchParams: every parameter Search answers.
func (e *Engine) Params(typ string) []fhirapi.SearchParamInfo {
	out := []fhirapi.SearchParamInfo{{Name: "_id", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id"}}
	for _, p := range e.params().Params(typ) {
		if p.Code != "_id" && p.Type != searchparam.Special {
			out = append(out, fhirapi.SearchParamInfo{Name: p.Code, Type: string(p.Type), Definition: p.URL})
		}
	}
	return out
}
