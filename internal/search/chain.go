package search

import (
	"context"
	"net/url"
	"strings"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/store"
)

// chainClause answers name[:Type].rest=raw: the ids of the target types
// that match rest=raw become an OR group of reference tokens.
func (e *Engine) chainClause(ctx context.Context, typ, name, mod, rest, raw string, o parseOpts) (clause, error) {
	p, ok := e.params().Lookup(typ, name)
	if !ok || p.Type != searchparam.Reference {
		return clause{}, notSupported("chained parameter " + clip(name) + " is not a reference parameter of " + typ)
	}
	targets := p.Targets
	if mod != "" {
		if !e.params().IsResourceType(mod) {
			return clause{}, badRequest("unknown resource type :" + clip(mod) + " in a chain")
		}
		targets = []string{mod}
	}
	inner, _, _ := strings.Cut(rest, ".")
	inner, _, _ = strings.Cut(inner, ":")
	c := clause{toks: []store.Token{}, param: name}
	n := 0
	for _, t := range targets {
		if _, ok := e.params().Lookup(t, inner); !ok && inner != "_id" && !strings.HasPrefix(rest, "_has:") {
			continue
		}
		n++
		pl, err := e.parse(ctx, t, url.Values{rest: {raw}}, parseOpts{base: o.base, depth: o.depth + 1, visible: o.visible})
		if err != nil {
			return clause{}, err
		}
		ids, err := e.ids(ctx, pl, maxChainIDs+1)
		if err != nil {
			return clause{}, err
		}
		if len(ids) > maxChainIDs {
			return clause{}, badRequest("the chained parameter " + clip(name+"."+rest) + " matches too many resources; narrow it")
		}
		for _, id := range ids {
			c.toks = append(c.toks, e.tok(typ, name, kRef, t+"/"+id))
		}
	}
	if n == 0 {
		return clause{}, notSupported("no target type of " + name + " has the parameter " + clip(inner))
	}
	return c, nil
}

// hasClause answers _has:Type:ref:rest=raw: resources of typ that some
// resource of Type matching rest=raw references through ref.
func (e *Engine) hasClause(ctx context.Context, typ, key, raw string, o parseOpts) (clause, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) != 4 || !e.params().IsResourceType(parts[1]) {
		return clause{}, badRequest("_has takes _has:Type:reference-parameter:parameter=value")
	}
	src, ref, rest := parts[1], parts[2], parts[3]
	if p, ok := e.params().Lookup(src, ref); !ok || p.Type != searchparam.Reference {
		return clause{}, badRequest("_has: " + clip(ref) + " is not a reference parameter of " + src)
	}
	pl, err := e.parse(ctx, src, url.Values{rest: {raw}}, parseOpts{base: o.base, depth: o.depth + 1, visible: o.visible})
	if err != nil {
		return clause{}, err
	}
	c := clause{toks: []store.Token{}}
	seen := map[string]bool{}
	n := 0
	var xerr error
	err = e.scan(ctx, pl, "", func(h hit) bool {
		n++
		if h.vals == nil {
			res, err := parseJSON(h.ent.Body)
			if err == nil {
				h.vals, err = e.params().Extract(res)
			}
			if err != nil {
				xerr = err
				return false
			}
		}
		for _, v := range h.vals {
			if v.Param == ref && v.Ref.Type == typ && v.Ref.ID != "" && !seen[v.Ref.ID] {
				seen[v.Ref.ID] = true
				c.toks = append(c.toks, e.tok(typ, "_id", kID, v.Ref.ID))
			}
		}
		return n <= 5*maxChainIDs && len(seen) <= maxChainIDs
	})
	if err == nil {
		err = xerr
	}
	if err != nil {
		return clause{}, err
	}
	if n > 5*maxChainIDs || len(seen) > maxChainIDs {
		return clause{}, badRequest("_has matches too many resources; narrow it")
	}
	return c, nil
}
