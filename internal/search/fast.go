package search

import (
	"strings"

	"github.com/phivault/phivault/internal/fhir/fhirpath"
	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// Extracting every parameter of a resource costs far more than decrypting
// it, so when a query only needs date parameters (range filters, date
// sorts) candidates evaluate just those. dateValues must give what
// searchparam.Extract gives for a date parameter; a test holds them equal.

// neededParams returns the parameters whose values decide and order the
// plan's matches, and whether all of them are date parameters.
func (pl *plan) neededParams() (params []string, allDates bool) {
	allDates = true
	for _, c := range pl.clauses {
		if c.check != nil {
			params = append(params, c.param)
			allDates = allDates && c.date
		}
	}
	for _, k := range pl.sort {
		if k.param != "_id" {
			params = append(params, k.param)
			allDates = allDates && k.typ == searchparam.Date
		}
	}
	return params, allDates
}

// dateOnly is what a plan whose needed parameters are all dates decodes
// of each candidate: the parameters, and the top-level members their
// expressions can reach (nil keep: all of them).
type dateOnly struct {
	params []string
	keep   func(key string) bool
	key    string // the params, joined: the memo's scope with the registry
}

// dateScope is what a candidate's date values depend on besides its body.
type dateScope struct {
	reg    *searchparam.Registry
	params string
}

// dateOnly returns, when the plan needs only date parameters, those
// parameters and which top-level members of a candidate to decode for
// them; params is nil otherwise.
func (pl *plan) dateOnly(e *Engine) (params []string, keep func(key string) bool) {
	if pl.dates == nil {
		d := &dateOnly{}
		if ps, all := pl.neededParams(); all {
			d.params = ps
			d.keep = e.reachable(pl.typ, ps)
			d.key = strings.Join(ps, "\x00")
		}
		pl.dates = d
	}
	return pl.dates.params, pl.dates.keep
}

// reachable returns which top-level members of a typ resource the
// expressions of params can read: the members named by an identifier in
// an expression's text (a choice element's name covers its typed forms,
// effective: effectiveDateTime; _x, a primitive's extensions, goes with
// x), and resourceType. Over-including costs only time. An expression that
// can read members it does not name (descendants(), children(),
// repeat(), resolve(), environment variables) keeps every member.
func (e *Engine) reachable(typ string, params []string) func(key string) bool {
	names := map[string]bool{"resourceType": true}
	for _, code := range params {
		p, ok := e.params().Lookup(typ, code)
		if !ok {
			continue // dateValues skips it too
		}
		x := p.Expression
		for _, f := range []string{"descendants", "children", "repeat", "resolve", "%"} {
			if strings.Contains(x, f) {
				return func(string) bool { return true }
			}
		}
		for _, id := range strings.FieldsFunc(x, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			names[id] = true
		}
	}
	return func(key string) bool {
		key = strings.TrimPrefix(key, "_")
		if names[key] {
			return true
		}
		// A choice element: the name, then the type, capitalized.
		for i := 1; i < len(key); i++ {
			if key[i] >= 'A' && key[i] <= 'Z' && names[key[:i]] {
				return true
			}
		}
		return false
	}
}

// dateValues evaluates the date parameters params of res.
func (e *Engine) dateValues(typ string, params []string, res map[string]any) ([]searchparam.Value, error) {
	in := fhirpath.Collection{{Value: res, Type: typ}}
	env := &fhirpath.Env{Resource: in}
	var out []searchparam.Value
	done := map[string]bool{}
	for _, code := range params {
		if done[code] {
			continue
		}
		done[code] = true
		p, ok := e.params().Lookup(typ, code)
		if !ok || p.Type != searchparam.Date {
			continue
		}
		items, err := p.Compiled().Evaluate(in, env)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			out = appendDate(out, code, unwrapExt(it).Value)
		}
	}
	return out, nil
}

func unwrapExt(it fhirpath.Item) fhirpath.Item {
	m, ok := it.Value.(map[string]any)
	if !ok || (it.Type != "Extension" && m["url"] == nil) {
		return it
	}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, "value"); ok && rest != "" {
			return fhirpath.Item{Value: v, Type: rest}
		}
	}
	return it
}

func appendDate(out []searchparam.Value, code string, v any) []searchparam.Value {
	base := searchparam.Value{Param: code, Type: searchparam.Date}
	switch x := v.(type) {
	case string:
		if lo, hi, p, err := searchparam.ParseDate(x); err == nil {
			base.Low, base.High, base.Precision = lo, hi, p
			out = append(out, base)
		}
	case map[string]any:
		if events, ok := x["event"].([]any); ok {
			for _, ev := range events {
				out = appendDate(out, code, ev)
			}
			return out
		}
		start, hasS := x["start"].(string)
		end, hasE := x["end"].(string)
		if !hasS && !hasE {
			return out
		}
		base.Low, base.High = searchparam.MinTime, searchparam.MaxTime
		if hasS {
			lo, _, _, err := searchparam.ParseDate(start)
			if err != nil {
				return out
			}
			base.Low = lo
		}
		if hasE {
			_, hi, _, err := searchparam.ParseDate(end)
			if err != nil {
				return out
			}
			base.High = hi
		}
		out = append(out, base)
	}
	return out
}
