package search

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/phivault/phivault/internal/fhir/searchparam"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/store"
)

var _ fhirapi.Searcher = (*Engine)(nil)

// control parameters that Find accepts and leaves to the caller.
var control = map[string]bool{"_count": true, "_format": true, "_summary": true, "_elements": true, "_pretty": true}

func badRequest(msg string) error {
	return &fhirapi.Error{Status: http.StatusBadRequest, Code: "invalid", Msg: msg}
}

// stringCheck is a string condition the tokens cannot decide alone.
type stringCheck struct {
	param string
	any   []string // normalized prefixes, one must match
}

// Find implements fhirapi.Searcher for token, reference, uri and string
// parameters and _id; comma is OR, repeated parameters are AND.
func (e *Engine) Find(ctx context.Context, typ string, q url.Values, limit int) ([]string, *store.MatchQuery, error) {
	mq := &store.MatchQuery{Type: typ}
	var checks []stringCheck
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if control[k] {
			continue
		}
		name, mod, _ := strings.Cut(k, ":")
		for _, raw := range q[k] {
			group, chk, err := e.group(typ, name, mod, raw)
			if err != nil {
				return nil, nil, err
			}
			mq.All = append(mq.All, group)
			if chk != nil {
				checks = append(checks, *chk)
			}
		}
	}
	if len(checks) == 0 {
		mq.Limit = limit
		ids, err := e.rec.Match(ctx, *mq)
		return ids, mq, err
	}
	ids, err := e.rec.Match(ctx, *mq)
	if err != nil {
		return nil, nil, err
	}
	ids, err = e.verify(ctx, typ, ids, checks, limit)
	return ids, nil, err
}

// group turns one parameter value (comma-separated alternatives) into an
// OR group of tokens.
func (e *Engine) group(typ, name, mod, raw string) ([]store.Token, *stringCheck, error) {
	if name == "_id" {
		if mod != "" {
			return nil, nil, badRequest("_id takes no modifier")
		}
		var g []store.Token
		for _, v := range splitOr(raw) {
			g = append(g, e.tok(typ, "_id", kID, v))
		}
		return g, nil, nil
	}
	p, ok := e.reg.Lookup(typ, name)
	if !ok {
		return nil, nil, badRequest("unknown search parameter " + name + " for " + typ)
	}
	if mod == "missing" {
		return nil, nil, badRequest(":missing is not supported yet")
	}
	var g []store.Token
	var chk *stringCheck
	for _, v := range splitOr(raw) {
		if v == "" {
			return nil, nil, badRequest("empty value for search parameter " + name)
		}
		switch p.Type {
		case searchparam.Token:
			if mod != "" {
				return nil, nil, badRequest("modifier :" + mod + " is not supported on token parameters yet")
			}
			sys, code, hasBar := strings.Cut(v, "|")
			switch {
			case !hasBar:
				g = append(g, e.tok(typ, name, kCode, v))
			case sys == "":
				g = append(g, e.tok(typ, name, kNoSys, code))
			case code == "":
				g = append(g, e.tok(typ, name, kSys, sys))
			default:
				g = append(g, e.tok(typ, name, kTok, sys, code))
			}
		case searchparam.Reference:
			switch {
			case mod == "identifier":
				sys, val, _ := strings.Cut(v, "|")
				g = append(g, e.tok(typ, name, kRefIdf, sys, val))
			case mod != "" && !e.reg.IsResourceType(mod):
				return nil, nil, badRequest("modifier :" + mod + " is not supported on reference parameters")
			case strings.Contains(v, "/"):
				ref := v
				if i := strings.LastIndex(v, "/_history/"); i >= 0 {
					ref = v[:i]
				}
				parts := strings.Split(ref, "/")
				if len(parts) < 2 {
					return nil, nil, badRequest("invalid reference value for " + name)
				}
				g = append(g, e.tok(typ, name, kRef, parts[len(parts)-2]+"/"+parts[len(parts)-1]))
			case mod != "":
				g = append(g, e.tok(typ, name, kRef, mod+"/"+v))
			default:
				g = append(g, e.tok(typ, name, kRefID, v))
			}
		case searchparam.URI:
			if mod != "" {
				return nil, nil, badRequest("modifier :" + mod + " is not supported on uri parameters yet")
			}
			g = append(g, e.tok(typ, name, kURI, v))
		case searchparam.String:
			switch mod {
			case "exact":
				g = append(g, e.tok(typ, name, kExact, v))
			case "":
				n := searchparam.Normalize(v)
				key, exact := prefixKey(n)
				g = append(g, e.tok(typ, name, kPrefix, key))
				if !exact {
					if chk == nil {
						chk = &stringCheck{param: name}
					}
					chk.any = append(chk.any, n)
				}
			default:
				return nil, nil, badRequest("modifier :" + mod + " is not supported on string parameters yet")
			}
		default:
			return nil, nil, badRequest("search on " + string(p.Type) + " parameters such as " + name + " is not supported yet")
		}
	}
	return g, chk, nil
}

// verify keeps the ids whose decrypted resource satisfies every check.
func (e *Engine) verify(ctx context.Context, typ string, ids []string, checks []stringCheck, limit int) ([]string, error) {
	var out []string
	for start := 0; start < len(ids); start += 256 {
		es, err := e.rec.ReadMany(ctx, typ, ids[start:min(start+256, len(ids))])
		if err != nil {
			return nil, err
		}
		for _, en := range es {
			res, err := parseJSON(en.Body)
			if err != nil {
				return nil, err
			}
			vals, err := e.reg.Extract(res)
			if err != nil {
				return nil, err
			}
			if satisfies(vals, checks) {
				out = append(out, en.ID)
				if limit > 0 && len(out) >= limit {
					return out, nil
				}
			}
		}
	}
	return out, nil
}

func satisfies(vals []searchparam.Value, checks []stringCheck) bool {
	for _, c := range checks {
		ok := false
		for _, v := range vals {
			if v.Param != c.param {
				continue
			}
			n := searchparam.Normalize(v.Text)
			for _, want := range c.any {
				ok = ok || strings.HasPrefix(n, want)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// splitOr splits a parameter value at unescaped commas.
func splitOr(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// Params implements fhirapi.SearchParams: the parameters Find answers.
func (e *Engine) Params(typ string) []fhirapi.SearchParamInfo {
	out := []fhirapi.SearchParamInfo{{Name: "_id", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id"}}
	for _, p := range e.reg.Params(typ) {
		switch p.Type {
		case searchparam.Token, searchparam.Reference, searchparam.URI, searchparam.String:
			if p.Code != "_id" {
				out = append(out, fhirapi.SearchParamInfo{Name: p.Code, Type: string(p.Type), Definition: p.URL})
			}
		}
	}
	return out
}
