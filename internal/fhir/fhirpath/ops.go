package fhirpath

import (
	"fmt"
	"math/big"
	"strings"
)

func (c *evalCtx) binary(n *node, focus Collection) (Collection, error) {
	l, err := c.eval(n.kids[0], focus)
	if err != nil {
		return nil, err
	}
	switch n.op { // three-valued logic may short-circuit
	case "and", "or", "implies":
		lb, lok, err := asBool(l)
		if err != nil {
			return nil, err
		}
		if lok && ((n.op == "and" && !lb) || (n.op == "or" && lb)) {
			return boolColl(n.op == "or"), nil
		}
		if n.op == "implies" && lok && !lb {
			return boolColl(true), nil
		}
		r, err := c.eval(n.kids[1], focus)
		if err != nil {
			return nil, err
		}
		rb, rok, err := asBool(r)
		if err != nil {
			return nil, err
		}
		return logic(n.op, lb, lok, rb, rok), nil
	}
	r, err := c.eval(n.kids[1], focus)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "xor":
		lb, lok, err1 := asBool(l)
		rb, rok, err2 := asBool(r)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("fhirpath: xor needs singletons")
		}
		if !lok || !rok {
			return nil, nil
		}
		return boolColl(lb != rb), nil
	case "|":
		return union(l, r), nil
	case "=", "!=":
		eq, ok := collEqual(l, r)
		if !ok {
			return nil, nil
		}
		return boolColl(eq == (n.op == "=")), nil
	case "~", "!~":
		return boolColl(collEquiv(l, r) == (n.op == "~")), nil
	case "in", "contains":
		if n.op == "contains" {
			l, r = r, l
		}
		it, ok, err := singleton(l)
		if !ok || err != nil {
			return nil, err
		}
		return boolColl(containsItem(r, it)), nil
	case "<", ">", "<=", ">=":
		return compareOp(n.op, l, r)
	case "&":
		return Collection{sys(strOrEmpty(l) + strOrEmpty(r))}, nil
	}
	return arith(n.op, l, r)
}

func logic(op string, lb, lok, rb, rok bool) Collection {
	switch op {
	case "and":
		if rok && !rb {
			return boolColl(false)
		}
		if lok && rok {
			return boolColl(true)
		}
	case "or":
		if rok && rb {
			return boolColl(true)
		}
		if lok && rok {
			return boolColl(false)
		}
	case "implies":
		if !lok {
			if rok && rb {
				return boolColl(true)
			}
			return nil
		}
		if rok {
			return boolColl(rb)
		}
	}
	return nil
}

func strOrEmpty(c Collection) string {
	if len(c) == 0 {
		return ""
	}
	return c[0].String()
}

func union(l, r Collection) Collection {
	out := make(Collection, 0, len(l)+len(r))
	for _, c := range []Collection{l, r} {
		for _, it := range c {
			if !containsItem(out, it) {
				out = append(out, it)
			}
		}
	}
	return out
}

func containsItem(c Collection, it Item) bool {
	for _, x := range c {
		if eq, ok := itemEqual(x, it); ok && eq {
			return true
		}
	}
	return false
}

// collEqual implements '='; ok is false when the result is empty.
func collEqual(l, r Collection) (eq, ok bool) {
	if len(l) == 0 || len(r) == 0 {
		return false, false
	}
	if len(l) != len(r) {
		return false, true
	}
	for i := range l {
		e, ok := itemEqual(l[i], r[i])
		if !ok {
			return false, false
		}
		if !e {
			return false, true
		}
	}
	return true, true
}

// itemEqual compares two items; ok is false when equality is unknown
// (date/time values of different precision).
func itemEqual(a, b Item) (eq, ok bool) {
	av, bv := system(a), system(b)
	switch x := av.(type) {
	case string:
		switch y := bv.(type) {
		case string:
			return x == y, true
		case Temporal:
			if t, err := parseAs(x, y.Kind); err == nil {
				return temporalEq(t, y)
			}
		}
		return false, true
	case Temporal:
		if s, isStr := bv.(string); isStr {
			if t, err := parseAs(s, x.Kind); err == nil {
				return temporalEq(x, t)
			}
			return false, true
		}
		if y, isT := bv.(Temporal); isT {
			return temporalEq(x, y)
		}
		return false, true
	case int64, Decimal:
		if y, isNum := numeric(bv); isNum {
			return toDecimal(av).Rat.Cmp(y.Rat) == 0, true
		}
		return false, true
	case bool:
		y, isB := bv.(bool)
		return isB && x == y, true
	case Quantity:
		y, isQ := bv.(Quantity)
		if !isQ {
			return false, true
		}
		if unitKey(x.Unit) != unitKey(y.Unit) {
			return false, true
		}
		return x.Value.Rat.Cmp(y.Value.Rat) == 0, true
	case map[string]any:
		y, isM := bv.(map[string]any)
		return isM && jsonEqual(x, y), true
	}
	return false, true
}

func parseAs(s string, k TemporalKind) (Temporal, error) {
	if k == KindTime {
		return parseTemporalLiteral("T" + s)
	}
	return ParseDateTime(s)
}

func temporalEq(a, b Temporal) (bool, bool) {
	c, ok := compareTemporal(a, b)
	if !ok {
		return false, false
	}
	return c == 0, true
}

func numeric(v any) (Decimal, bool) {
	switch v.(type) {
	case int64, Decimal:
		return toDecimal(v), true
	}
	return Decimal{}, false
}

func unitKey(u string) string {
	if c := calendarUnits[u]; c != "" && c != "a" && c != "mo" {
		return c
	}
	if u == "" {
		return "1"
	}
	return u
}

func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// collEquiv implements '~': order-independent, case- and
// whitespace-insensitive for strings, precision-tolerant for decimals.
func collEquiv(l, r Collection) bool {
	if len(l) != len(r) {
		return false
	}
	used := make([]bool, len(r))
outer:
	for _, a := range l {
		for j, b := range r {
			if !used[j] && itemEquiv(a, b) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

func itemEquiv(a, b Item) bool {
	av, bv := system(a), system(b)
	if x, ok := av.(string); ok {
		y, ok := bv.(string)
		return ok && strings.EqualFold(strings.Join(strings.Fields(x), " "), strings.Join(strings.Fields(y), " "))
	}
	if x, ok := numeric(av); ok {
		y, ok := numeric(bv)
		if !ok {
			return false
		}
		s := min(x.Scale, y.Scale)
		return roundDec(x, s).Cmp(roundDec(y, s)) == 0
	}
	if x, ok := av.(Temporal); ok {
		y, ok := bv.(Temporal)
		if !ok {
			return false
		}
		c, known := compareTemporal(x, y)
		return known && c == 0
	}
	eq, ok := itemEqual(a, b)
	return ok && eq
}

func roundDec(d Decimal, scale int) *big.Rat {
	r, _ := new(big.Rat).SetString(d.Rat.FloatString(scale))
	return r
}

func compareOp(op string, l, r Collection) (Collection, error) {
	a, aok, err1 := singleton(l)
	b, bok, err2 := singleton(r)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("fhirpath: %s needs singletons", op)
	}
	if !aok || !bok {
		return nil, nil
	}
	c, known, err := compareItems(a, b)
	if err != nil || !known {
		return nil, err
	}
	switch op {
	case "<":
		return boolColl(c < 0), nil
	case ">":
		return boolColl(c > 0), nil
	case "<=":
		return boolColl(c <= 0), nil
	}
	return boolColl(c >= 0), nil
}

func compareItems(a, b Item) (int, bool, error) {
	av, bv := system(a), system(b)
	if s, ok := av.(string); ok {
		if t, isT := bv.(Temporal); isT {
			if x, err := parseAs(s, t.Kind); err == nil {
				av = x
			}
		} else if y, isS := bv.(string); isS {
			return strings.Compare(s, y), true, nil
		}
	}
	if s, ok := bv.(string); ok {
		if t, isT := av.(Temporal); isT {
			if y, err := parseAs(s, t.Kind); err == nil {
				bv = y
			}
		}
	}
	switch x := av.(type) {
	case Temporal:
		if y, ok := bv.(Temporal); ok {
			c, known := compareTemporal(x, y)
			return c, known, nil
		}
	case Quantity:
		if y, ok := bv.(Quantity); ok && unitKey(x.Unit) == unitKey(y.Unit) {
			return x.Value.Rat.Cmp(y.Value.Rat), true, nil
		}
		if _, ok := bv.(Quantity); ok {
			return 0, false, nil
		}
	default:
		if x, ok := numeric(av); ok {
			if y, ok := numeric(bv); ok {
				return x.Rat.Cmp(y.Rat), true, nil
			}
		}
	}
	return 0, false, fmt.Errorf("fhirpath: cannot compare %s with %s", a.String(), b.String())
}
