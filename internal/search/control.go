package search

import (
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// sortKey is one _sort key.
type sortKey struct {
	param string
	typ   searchparam.Type
	desc  bool
}

// incl is one _include or _revinclude: resources of source whose param
// (every reference parameter when "*") points at target ("" any).
type incl struct {
	source, param, target string
	iterate               bool
}

func (e *Engine) parseControl(pl *plan, key string, vals []string) error {
	name, mod, _ := strings.Cut(key, ":")
	if mod != "" && !((name == "_include" || name == "_revinclude") && mod == "iterate") {
		return badRequest("modifier :" + mod + " is not supported on " + name)
	}
	last := vals[len(vals)-1]
	switch name {
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 || n > maxCount {
			return badRequest("_count must be a whole number from 0 to " + strconv.Itoa(maxCount))
		}
		pl.count = n
		if n == 0 {
			pl.summaryCount = true
		}
	case "_total":
		switch last {
		case "none", "estimate", "accurate":
			pl.total = last
		default:
			return badRequest("_total must be none, estimate or accurate")
		}
	case "_summary":
		switch last {
		case "count":
			pl.summaryCount = true
		case "true", "false", "text", "data":
		default:
			return badRequest("_summary must be true, false, text, data or count")
		}
	case "_elements":
		// Checked here, not only when a match is shaped, so that a
		// malformed _elements is refused whether or not anything matches.
		for _, v := range vals {
			for _, el := range strings.Split(v, ",") {
				if el = strings.TrimSpace(el); v != "" && (el == "" || !fhir.IsElement(pl.typ, el)) {
					return badRequest("_elements names an element that " + pl.typ + " does not have")
				}
			}
		}
	case "_sort":
		if len(pl.sort) > 0 || len(vals) > 1 {
			return badRequest("_sort may be given once")
		}
		for _, k := range strings.Split(last, ",") {
			desc := strings.HasPrefix(k, "-")
			k = strings.TrimPrefix(k, "-")
			if k == "_id" {
				pl.sort = append(pl.sort, sortKey{param: "_id", typ: searchparam.Token, desc: desc})
				continue
			}
			p, ok := e.params().Lookup(pl.typ, k)
			if !ok || p.Type == searchparam.Special || p.Type == searchparam.Composite {
				return badRequest("cannot sort " + pl.typ + " by " + strconv.Quote(clip(k)))
			}
			pl.sort = append(pl.sort, sortKey{param: k, typ: p.Type, desc: desc})
		}
		if len(pl.sort) > 5 {
			return badRequest("_sort takes at most 5 keys")
		}
	case "_include", "_revinclude":
		for _, v := range vals {
			in, err := e.parseIncl(pl.typ, name == "_revinclude", v)
			if err != nil {
				return err
			}
			in.iterate = mod == "iterate"
			if name == "_include" {
				pl.include = append(pl.include, in)
			} else {
				pl.revinclude = append(pl.revinclude, in)
			}
		}
		if len(pl.include)+len(pl.revinclude) > 10 {
			return badRequest("at most 10 _include and _revinclude values")
		}
	}
	return nil
}

// parseIncl parses Source:param[:Target] or "*".
func (e *Engine) parseIncl(typ string, rev bool, v string) (incl, error) {
	if v == "*" {
		if rev {
			return incl{}, badRequest("_revinclude=* is not supported")
		}
		return incl{source: typ, param: "*"}, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || !e.params().IsResourceType(parts[0]) {
		return incl{}, badRequest("_include and _revinclude take Type:parameter[:TargetType]")
	}
	in := incl{source: parts[0], param: parts[1]}
	if in.param != "*" {
		p, ok := e.params().Lookup(in.source, in.param)
		if !ok || p.Type != searchparam.Reference {
			return incl{}, badRequest(strconv.Quote(clip(v)) + " does not name a reference parameter")
		}
	}
	if len(parts) == 3 {
		if !e.params().IsResourceType(parts[2]) {
			return incl{}, badRequest("unknown target type in " + strconv.Quote(clip(v)))
		}
		in.target = parts[2]
	}
	return in, nil
}

// sval is one sort key of one resource; has is false when the resource
// has no value for it (such resources sort last either way).
type sval struct {
	Has bool      `json:"h,omitempty"`
	S   string    `json:"s,omitempty"`
	F   float64   `json:"f,omitempty"`
	T   time.Time `json:"t,omitzero"`
}

// keyOf computes a resource's sort keys: the smallest value ascending, the
// largest descending (dates: the start of the earliest interval, the end
// of the latest).
func keyOf(keys []sortKey, id string, vals []searchparam.Value) []sval {
	out := make([]sval, len(keys))
	for i, k := range keys {
		if k.param == "_id" {
			out[i] = sval{Has: true, S: id}
			continue
		}
		var best sval
		for _, v := range vals {
			if v.Param != k.param {
				continue
			}
			c := sval{Has: true}
			switch k.typ {
			case searchparam.Date:
				c.T = v.Low
				if k.desc {
					c.T = v.High
				}
			case searchparam.Number, searchparam.Quantity:
				c.F = v.Float
			case searchparam.String:
				c.S = searchparam.Normalize(v.Text)
			case searchparam.Token:
				c.S = v.Code
			case searchparam.Reference:
				c.S = v.Ref.Key()
			case searchparam.URI:
				c.S = v.Text
			}
			if !best.Has || (cmpVal(c, best) > 0) == k.desc {
				best = c
			}
		}
		out[i] = best
	}
	return out
}

func cmpVal(a, b sval) int {
	switch {
	case !a.T.Equal(b.T):
		return a.T.Compare(b.T)
	case a.F != b.F:
		if a.F < b.F {
			return -1
		}
		return 1
	}
	return strings.Compare(a.S, b.S)
}

// cmpKeys orders two resources by their keys, then by id.
func cmpKeys(keys []sortKey, a []sval, aid string, b []sval, bid string) int {
	for i, k := range keys {
		x, y := a[i], b[i]
		switch {
		case !x.Has && !y.Has:
			continue
		case !x.Has:
			return 1
		case !y.Has:
			return -1
		}
		if c := cmpVal(x, y); c != 0 {
			if k.desc {
				return -c
			}
			return c
		}
	}
	return strings.Compare(aid, bid)
}
