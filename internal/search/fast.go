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
