// Package fhirpath parses and evaluates FHIRPath expressions
// (http://hl7.org/fhirpath, N1 as used by FHIR R4) over resources decoded
// from JSON into map[string]any with numbers as json.Number.
//
// Parse builds an immutable AST once; Evaluate may then run it concurrently
// on many resources. Evaluation is model-free: it knows no StructureDefinitions,
// so element types come from the JSON itself (resourceType, the suffix of a
// choice element such as valueQuantity) and FHIR's type names. That is enough
// for every expression of the R4 SearchParameter definitions, including
// resolve(), is/as/ofType() on choice elements and extension(url).
// Evaluation never panics and never performs I/O: resolve() only reads the
// reference text, Reference.type and the resource's contained resources.
package fhirpath

import (
	"fmt"
	"strings"
	"time"
)

// Env is the environment of one evaluation. The zero value is usable.
type Env struct {
	// Resource is %resource and %context; it defaults to the input.
	Resource any
	// Vars holds other external constants by name (without '%').
	Vars map[string]Collection
	// Now fixes now(), today() and timeOfDay(); zero means time.Now().
	Now time.Time
}

type evalCtx struct {
	env      *Env
	resource Collection
	this     Collection
	index    int
	total    Collection
	steps    int
}

// maxSteps bounds the work of one evaluation (repeat(), descendants()).
const maxSteps = 1 << 22

// Evaluate runs the expression on input, which may be a resource
// (map[string]any), an Item, a Collection or a system value.
func (e *Expression) Evaluate(input any, env *Env) (Collection, error) {
	if env == nil {
		env = &Env{}
	}
	in := toCollection(input)
	ctx := &evalCtx{env: env, this: in, resource: in}
	if env.Resource != nil {
		ctx.resource = toCollection(env.Resource)
	}
	return ctx.eval(e.root, in)
}

// EvaluateBool evaluates the expression and applies singleton boolean
// evaluation: empty is false.
func (e *Expression) EvaluateBool(input any, env *Env) (bool, error) {
	c, err := e.Evaluate(input, env)
	if err != nil {
		return false, err
	}
	b, _, err := asBool(c)
	return b, err
}

func toCollection(v any) Collection {
	switch x := v.(type) {
	case nil:
		return nil
	case Collection:
		return x
	case Item:
		return Collection{x}
	case []any:
		var c Collection
		for _, el := range x {
			c = append(c, jsonItem(el, ""))
		}
		return c
	}
	return Collection{jsonItem(v, "")}
}

// jsonItem wraps a JSON node, taking the type from resourceType if present.
func jsonItem(v any, typ string) Item {
	if m, ok := v.(map[string]any); ok && typ == "" {
		if rt, ok := m["resourceType"].(string); ok {
			typ = rt
		}
	}
	return Item{Value: v, Type: typ}
}

func (c *evalCtx) eval(n *node, focus Collection) (Collection, error) {
	c.steps++
	if c.steps > maxSteps {
		return nil, fmt.Errorf("fhirpath: evaluation too expensive")
	}
	switch n.kind {
	case nLiteral:
		return n.lit, nil
	case nIdent:
		return c.member(focus, n.name, true), nil
	case nChild:
		on, err := c.eval(n.kids[0], focus)
		if err != nil {
			return nil, err
		}
		return c.member(on, n.name, false), nil
	case nExternal:
		return c.external(n.name)
	case nSpecial:
		switch n.name {
		case "$this":
			return c.this, nil
		case "$index":
			return Collection{{Value: int64(c.index), Type: "integer"}}, nil
		case "$total":
			return c.total, nil
		}
		return nil, fmt.Errorf("fhirpath: unknown variable %s", n.name)
	case nCall:
		on := focus
		if n.kids[0] != nil {
			var err error
			if on, err = c.eval(n.kids[0], focus); err != nil {
				return nil, err
			}
		}
		return c.call(n, on, focus)
	case nIndex:
		on, err := c.eval(n.kids[0], focus)
		if err != nil {
			return nil, err
		}
		idx, err := c.eval(n.kids[1], focus)
		if err != nil {
			return nil, err
		}
		it, ok, err := singleton(idx)
		if !ok || err != nil {
			return nil, err
		}
		i, isInt := system(it).(int64)
		if !isInt {
			return nil, fmt.Errorf("fhirpath: index must be an integer")
		}
		if i < 0 || i >= int64(len(on)) {
			return nil, nil
		}
		return Collection{on[i]}, nil
	case nUnary:
		v, err := c.eval(n.kids[0], focus)
		if err != nil || n.op == "+" {
			return v, err
		}
		return negate(v)
	case nType:
		v, err := c.eval(n.kids[0], focus)
		if err != nil {
			return nil, err
		}
		if n.op == "is" {
			it, ok, err := singleton(v)
			if !ok || err != nil {
				return nil, err
			}
			return boolColl(isType(it, n.name)), nil
		}
		return asType(v, n.name), nil
	case nBinary:
		return c.binary(n, focus)
	}
	return nil, fmt.Errorf("fhirpath: bad node")
}

func (c *evalCtx) external(name string) (Collection, error) {
	switch name {
	case "resource", "context", "rootResource":
		return c.resource, nil
	case "ucum":
		return Collection{{Value: "http://unitsofmeasure.org"}}, nil
	case "sct":
		return Collection{{Value: "http://snomed.info/sct"}}, nil
	case "loinc":
		return Collection{{Value: "http://loinc.org"}}, nil
	}
	if v, ok := c.env.Vars[name]; ok {
		return v, nil
	}
	if rest, ok := strings.CutPrefix(name, "vs-"); ok {
		return Collection{{Value: "http://hl7.org/fhir/ValueSet/" + rest}}, nil
	}
	if rest, ok := strings.CutPrefix(name, "ext-"); ok {
		return Collection{{Value: "http://hl7.org/fhir/StructureDefinition/" + rest}}, nil
	}
	return nil, fmt.Errorf("fhirpath: unknown external constant %%%s", name)
}

// member navigates to the child elements called name of every item. At the
// start of a path (first), a name equal to the item's type (or a supertype
// such as Resource) selects the item itself, as in "Patient.name".
func (c *evalCtx) member(focus Collection, name string, first bool) Collection {
	var out Collection
	for _, it := range focus {
		if first && it.Type != "" && typeMatches(it.Type, name) {
			out = append(out, it)
			continue
		}
		m, ok := it.Value.(map[string]any)
		if !ok {
			continue
		}
		if v, ok := m[name]; ok {
			out = appendJSON(out, v, "")
			continue
		}
		if _, ok := m["_"+name]; ok { // primitive with only extensions
			continue
		}
		for k, v := range m {
			if len(k) > len(name) && strings.HasPrefix(k, name) {
				if t := choiceType(k[len(name):]); t != "" {
					out = appendJSON(out, v, t)
					break
				}
			}
		}
	}
	return out
}

func appendJSON(out Collection, v any, typ string) Collection {
	if arr, ok := v.([]any); ok {
		for _, el := range arr {
			if el != nil {
				out = append(out, jsonItem(el, typ))
			}
		}
		return out
	}
	if v == nil {
		return out
	}
	return append(out, jsonItem(v, typ))
}
