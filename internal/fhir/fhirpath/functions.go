package fhirpath

import (
	"fmt"
	"strings"
)

// call dispatches a function invocation. on is the input collection, focus
// the context the arguments are evaluated in.
func (c *evalCtx) call(n *node, on, focus Collection) (Collection, error) {
	if out, found, err := c.callCore(n, on, focus); found {
		return out, err
	}
	if out, found, err := c.callScalar(n, on, focus); found {
		return out, err
	}
	return nil, fmt.Errorf("fhirpath: unknown function %s()", n.name)
}

func (c *evalCtx) arity(n *node, lo, hi int) error {
	if len(n.args) < lo || len(n.args) > hi {
		return fmt.Errorf("fhirpath: %s() takes %d to %d arguments, got %d", n.name, lo, hi, len(n.args))
	}
	return nil
}

// arg evaluates argument i against focus; a missing argument is an error.
func (c *evalCtx) arg(n *node, i int, focus Collection) (Collection, error) {
	if i >= len(n.args) {
		return nil, fmt.Errorf("fhirpath: %s() needs at least %d arguments, got %d", n.name, i+1, len(n.args))
	}
	return c.eval(n.args[i], focus)
}

// typeArg returns the type name written as a function argument (ofType(X)).
func typeArg(a *node) (string, error) {
	switch a.kind {
	case nIdent:
		return a.name, nil
	case nChild:
		if q, err := typeArg(a.kids[0]); err == nil {
			return q + "." + a.name, nil
		}
	}
	return "", fmt.Errorf("fhirpath: expected a type name")
}

// each evaluates argument 0 once per item with $this and $index set. The
// function must have been given exactly one argument (where(), select(),
// all() ...); otherwise it is an error, also on an empty input.
func (c *evalCtx) each(n *node, on Collection, fn func(i int, it Item, res Collection) (stop bool, err error)) error {
	if err := c.arity(n, 1, 1); err != nil {
		return err
	}
	saveThis, saveIdx := c.this, c.index
	defer func() { c.this, c.index = saveThis, saveIdx }()
	for i, it := range on {
		one := Collection{it}
		c.this, c.index = one, i
		res, err := c.eval(n.args[0], one)
		if err != nil {
			return err
		}
		if stop, err := fn(i, it, res); stop || err != nil {
			return err
		}
	}
	return nil
}

func (c *evalCtx) callCore(n *node, on, focus Collection) (Collection, bool, error) {
	var out Collection
	var err error
	switch n.name {
	case "empty":
		return boolColl(len(on) == 0), true, c.arity(n, 0, 0)
	case "exists", "all":
		if len(n.args) == 0 {
			return boolColl(len(on) > 0 || n.name == "all"), true, nil
		}
		want := n.name == "exists"
		result := !want
		err = c.each(n, on, func(_ int, _ Item, res Collection) (bool, error) {
			b, ok, err := asBool(res)
			if (ok && b) == want {
				result = want
				return true, err
			}
			return false, err
		})
		return boolColl(result), true, err
	case "where", "select":
		err = c.each(n, on, func(_ int, it Item, res Collection) (bool, error) {
			if n.name == "select" {
				out = append(out, res...)
				return false, nil
			}
			b, ok, err := asBool(res)
			if ok && b {
				out = append(out, it)
			}
			return false, err
		})
		return out, true, err
	case "repeat":
		queue := on
		for len(queue) > 0 && err == nil {
			var next Collection
			err = c.each(n, queue, func(_ int, _ Item, res Collection) (bool, error) {
				for _, r := range res {
					if !containsItem(out, r) {
						out = append(out, r)
						next = append(next, r)
					}
				}
				c.steps += len(res)
				if c.steps > maxSteps {
					return true, fmt.Errorf("fhirpath: evaluation too expensive")
				}
				return false, nil
			})
			queue = next
		}
		return out, true, err
	case "allTrue", "anyTrue", "allFalse", "anyFalse":
		want := strings.HasSuffix(n.name, "True")
		any := strings.HasPrefix(n.name, "any")
		res := !any
		for _, it := range on {
			b, isB := it.Value.(bool)
			if any && isB && b == want {
				res = true
			}
			if !any && (!isB || b != want) {
				res = false
			}
		}
		return boolColl(res), true, nil
	case "subsetOf", "supersetOf":
		other, err := c.arg(n, 0, focus)
		sub, super := on, other
		if n.name == "supersetOf" {
			sub, super = other, on
		}
		for _, it := range sub {
			if !containsItem(super, it) {
				return boolColl(false), true, err
			}
		}
		return boolColl(true), true, err
	case "count":
		return Collection{sys(int64(len(on)))}, true, nil
	case "distinct", "isDistinct":
		for _, it := range on {
			if !containsItem(out, it) {
				out = append(out, it)
			}
		}
		if n.name == "isDistinct" {
			return boolColl(len(out) == len(on)), true, nil
		}
		return out, true, nil
	case "ofType", "as", "is":
		if err := c.arity(n, 1, 1); err != nil {
			return nil, true, err
		}
		t, err := typeArg(n.args[0])
		if err != nil {
			return nil, true, err
		}
		if n.name == "is" {
			it, ok, err := singleton(on)
			if !ok || err != nil {
				return nil, true, err
			}
			return boolColl(isType(it, t)), true, nil
		}
		return asType(on, t), true, nil
	case "first", "last", "tail", "single":
		switch {
		case len(on) == 0:
			return nil, true, nil
		case n.name == "first":
			return on[:1], true, nil
		case n.name == "last":
			return on[len(on)-1:], true, nil
		case n.name == "tail":
			return on[1:], true, nil
		case len(on) > 1:
			return nil, true, fmt.Errorf("fhirpath: single() on %d items", len(on))
		}
		return on, true, nil
	case "skip", "take":
		a, err := c.arg(n, 0, focus)
		it, ok, _ := singleton(a)
		k, isInt := system(it).(int64)
		if err != nil || !ok || !isInt {
			return nil, true, fmt.Errorf("fhirpath: %s() needs an integer", n.name)
		}
		k = max(0, min(k, int64(len(on))))
		if n.name == "skip" {
			return on[k:], true, nil
		}
		return on[:k], true, nil
	case "intersect", "exclude", "union", "combine":
		other, err := c.arg(n, 0, focus)
		switch n.name {
		case "union":
			return union(on, other), true, err
		case "combine":
			return append(append(Collection{}, on...), other...), true, err
		}
		for _, it := range on {
			in := containsItem(other, it)
			if in == (n.name == "intersect") && (n.name == "exclude" || !containsItem(out, it)) {
				out = append(out, it)
			}
		}
		return out, true, err
	case "iif":
		if err := c.arity(n, 2, 3); err != nil {
			return nil, true, err
		}
		cond, err := c.arg(n, 0, on)
		if err != nil {
			return nil, true, err
		}
		if b, ok, _ := asBool(cond); ok && b {
			out, err = c.arg(n, 1, on)
		} else if len(n.args) == 3 {
			out, err = c.arg(n, 2, on)
		}
		return out, true, err
	case "not":
		b, ok, err := asBool(on)
		if !ok || err != nil {
			return nil, true, err
		}
		return boolColl(!b), true, nil
	case "children", "descendants":
		out = children(on)
		if n.name == "descendants" {
			for next := out; len(next) > 0 && len(out) < maxSteps; {
				next = children(next)
				out = append(out, next...)
			}
		}
		return out, true, nil
	case "trace":
		return on, true, nil
	case "resolve":
		return c.resolve(on), true, nil
	case "extension", "hasExtension":
		a, err := c.arg(n, 0, focus)
		url := strOrEmpty(a)
		for _, ext := range c.member(on, "extension", false) {
			if m, ok := ext.Value.(map[string]any); ok && m["url"] == url {
				out = append(out, Item{Value: m, Type: "Extension"})
			}
		}
		if n.name == "hasExtension" {
			return boolColl(len(out) > 0), true, err
		}
		return out, true, err
	case "hasValue":
		it, ok, _ := singleton(on)
		_, isMap := it.Value.(map[string]any)
		return boolColl(ok && !isMap), true, nil
	case "getValue":
		if it, ok, _ := singleton(on); ok {
			if _, isMap := it.Value.(map[string]any); !isMap {
				return on, true, nil
			}
		}
		return nil, true, nil
	}
	return nil, false, nil
}

func children(on Collection) Collection {
	var out Collection
	for _, it := range on {
		if m, ok := it.Value.(map[string]any); ok {
			for k, v := range m {
				if k != "resourceType" {
					out = appendJSON(out, v, "")
				}
			}
		}
	}
	return out
}
