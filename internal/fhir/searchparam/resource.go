package searchparam

import "fmt"

// ParamFromResource reads a SearchParameter resource (as posted by a
// client) into a Param and its base types. It checks shape only: code,
// type, base and a parseable expression; Registry.With checks the bases
// and component definitions against the registry.
func ParamFromResource(sp map[string]any) (*Param, []string, error) {
	if rt, _ := sp["resourceType"].(string); rt != "SearchParameter" {
		return nil, nil, fmt.Errorf("searchparam: resourceType must be SearchParameter")
	}
	p := &Param{}
	p.URL, _ = sp["url"].(string)
	p.Code, _ = sp["code"].(string)
	t, _ := sp["type"].(string)
	p.Type = Type(t)
	p.Expression, _ = sp["expression"].(string)
	p.Base = stringList(sp["base"])
	p.Targets = stringList(sp["target"])
	switch {
	case !validCode(p.Code):
		return nil, nil, fmt.Errorf("searchparam: invalid code %q", p.Code)
	case !p.Type.valid():
		return nil, nil, fmt.Errorf("searchparam %s: invalid type %q", p.Code, t)
	case len(p.Base) == 0:
		return nil, nil, fmt.Errorf("searchparam %s: no base", p.Code)
	case p.Expression == "" && p.Type != Special:
		return nil, nil, fmt.Errorf("searchparam %s: no expression", p.Code)
	}
	comps, _ := sp["component"].([]any)
	for _, c := range comps {
		m, _ := c.(map[string]any)
		def, _ := m["definition"].(string)
		expr, _ := m["expression"].(string)
		if def == "" || expr == "" {
			return nil, nil, fmt.Errorf("searchparam %s: component needs definition and expression", p.Code)
		}
		p.Components = append(p.Components, Component{Definition: def, Expression: expr})
	}
	if p.Type != Special {
		tmp := *p
		tmp.Components = nil
		if err := tmp.compile(); err != nil {
			return nil, nil, err
		}
	}
	return p, p.Base, nil
}

func stringList(v any) []string {
	arr, _ := v.([]any)
	var out []string
	for _, x := range arr {
		if s, ok := x.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}
