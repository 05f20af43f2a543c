package searchparam

import (
	"fmt"
	"time"

	"github.com/phivault/phivault/internal/fhir/fhirpath"
)

// Value is one indexed value of a search parameter. Which fields are set
// depends on Type:
//
//   - string: Text (raw text; index Normalize(Text)).
//   - uri: Text (the uri, verbatim).
//   - token: System and Code; Display (a Coding's display) and Text (a
//     CodeableConcept's or Identifier type's text) for :text; for an
//     Identifier, TypeSystem/TypeCode give its type coding for :of-type.
//     Booleans are "true"/"false"; ContactPoints have no system.
//   - reference: Ref.
//   - date: Low and High, the closed UTC interval the value covers, and
//     Precision (0 for a Period or Timing).
//   - number: Number (decimal text as written, keeping its precision) and Float.
//   - quantity: Number, Float, System and Code (the unit's system and code)
//     and Unit (the human unit text).
//   - composite: Components, one value per component in definition order.
type Value struct {
	Param string
	Type  Type

	Text                 string
	System, Code         string
	Display              string
	TypeSystem, TypeCode string
	Ref                  Ref
	Low, High            time.Time
	Precision            Precision
	Number               string
	Float                float64
	Unit                 string
	Components           []Value
}

// Ref is a normalized reference. Type and ID are set when the reference
// names them ("Patient/123", "http://host/fhir/Patient/123", "Patient/1/_history/2");
// Base is the part of an absolute URL before Type/ID; Version is a
// _history version or, for a canonical, the part after '|'. Local ("#id")
// and urn: references keep only Raw (and Type when Reference.type says it).
// IdentifierSystem/IdentifierValue serve :identifier.
type Ref struct {
	Raw                               string
	Type, ID, Version, Base           string
	Canonical                         string // canonical URL without |version
	IdentifierSystem, IdentifierValue string
}

// Key returns "Type/ID" for a resolvable reference, else "".
func (r Ref) Key() string {
	if r.Type == "" || r.ID == "" {
		return ""
	}
	return r.Type + "/" + r.ID
}

// maxComposite caps the combinations one composite root may produce.
const maxComposite = 64

// Extract evaluates every search parameter of the resource's type and
// returns its values grouped by parameter in code order. Elements whose
// shape does not fit the parameter's type are skipped, not reported: a
// resource that was valid when stored must always index. The error is
// non-nil only for a missing or unknown resourceType or a failing expression.
func (r *Registry) Extract(res map[string]any) ([]Value, error) {
	rt, _ := res["resourceType"].(string)
	params, ok := r.merged[rt]
	if !ok {
		return nil, fmt.Errorf("searchparam: unknown resourceType %q", rt)
	}
	in := fhirpath.Collection{{Value: res, Type: rt}} // built once: Evaluate takes a Collection as is
	env := &fhirpath.Env{Resource: in}
	var out []Value
	for _, p := range params {
		if p.Type == Special || p.expr == nil {
			continue
		}
		items, err := p.expr.Evaluate(in, env)
		if err != nil {
			return nil, fmt.Errorf("searchparam %s.%s: %w", rt, p.Code, err)
		}
		if p.Type == Composite {
			vals, err := composite(p, items, env)
			if err != nil {
				return nil, err
			}
			out = append(out, vals...)
			continue
		}
		for _, it := range items {
			out = convert(out, p.Code, p.Type, it)
		}
	}
	return out, nil
}

func composite(p *Param, roots fhirpath.Collection, env *fhirpath.Env) ([]Value, error) {
	var out []Value
	for _, root := range roots {
		combos := [][]Value{nil}
		for _, c := range p.Components {
			items, err := c.expr.Evaluate(root, env)
			if err != nil {
				return nil, fmt.Errorf("searchparam %s component %s: %w", p.Code, c.Code, err)
			}
			var vals []Value
			for _, it := range items {
				vals = convert(vals, c.Code, c.Type, it)
			}
			var next [][]Value
			for _, combo := range combos {
				for _, v := range vals {
					if len(next) < maxComposite {
						next = append(next, append(combo[:len(combo):len(combo)], v))
					}
				}
			}
			combos = next
		}
		for _, combo := range combos {
			if len(combo) == len(p.Components) {
				out = append(out, Value{Param: p.Code, Type: Composite, Components: combo})
			}
		}
	}
	return out, nil
}
