package fhirpath

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// callScalar implements the functions on a single input item: strings,
// math, conversions, type() and the clock.
func (c *evalCtx) callScalar(n *node, on, focus Collection) (Collection, bool, error) {
	switch n.name {
	case "now", "today", "timeOfDay":
		now := c.env.Now
		if now.IsZero() {
			now = time.Now()
		}
		t := Temporal{Kind: KindDateTime, T: now, Prec: Millisecond, HasTZ: true}
		switch n.name {
		case "today":
			t = Temporal{Kind: KindDate, T: time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC), Prec: Day}
		case "timeOfDay":
			t = Temporal{Kind: KindTime, T: time.Date(0, 1, 1, now.Hour(), now.Minute(), now.Second(), now.Nanosecond(), time.UTC), Prec: Millisecond}
		}
		t.src = formatTemporal(t)
		return Collection{sys(t)}, true, nil
	case "join":
		var parts []string
		sep := ""
		if len(n.args) > 0 {
			a, err := c.arg(n, 0, focus)
			if err != nil {
				return nil, true, err
			}
			sep = strOrEmpty(a)
		}
		for _, it := range on {
			parts = append(parts, it.String())
		}
		return Collection{sys(strings.Join(parts, sep))}, true, nil
	}
	it, ok, err := singleton(on)
	if err != nil {
		if isScalarFunc(n.name) {
			return nil, true, err
		}
		return nil, false, nil
	}
	if !ok {
		return nil, isScalarFunc(n.name), nil
	}
	var args []Item
	for i := range n.args {
		a, err := c.arg(n, i, focus)
		if err != nil {
			return nil, true, err
		}
		ai, ok, err := singleton(a)
		if err != nil {
			return nil, true, err
		}
		if !ok {
			return nil, isScalarFunc(n.name), nil
		}
		args = append(args, ai)
	}
	return scalar(n.name, it, args)
}

func isScalarFunc(name string) bool {
	_, _, err := scalar(name, Item{Value: "x"}, []Item{{Value: "x"}, {Value: "x"}})
	return err == nil || !strings.Contains(err.Error(), "unknown function")
}

func scalar(name string, it Item, args []Item) (Collection, bool, error) {
	v := system(it)
	str := func() (string, error) {
		if s, ok := v.(string); ok {
			return s, nil
		}
		return "", fmt.Errorf("fhirpath: %s() needs a string", name)
	}
	argStr := func(i int) string {
		if i < len(args) {
			return args[i].String()
		}
		return ""
	}
	one := func(x any) (Collection, bool, error) { return Collection{sys(x)}, true, nil }
	switch name {
	case "toString":
		return one(it.String())
	case "convertsToString":
		return one(true)
	case "toInteger", "convertsToInteger", "toDecimal", "convertsToDecimal", "toBoolean", "convertsToBoolean",
		"toDate", "convertsToDate", "toDateTime", "convertsToDateTime", "toTime", "convertsToTime",
		"toQuantity", "convertsToQuantity":
		target := strings.TrimPrefix(strings.TrimPrefix(name, "convertsTo"), "to")
		res, ok := convert(v, target)
		if strings.HasPrefix(name, "convertsTo") {
			return one(ok)
		}
		if !ok {
			return nil, true, nil
		}
		return one(res)
	case "length":
		s, err := str()
		return Collection{sys(int64(len([]rune(s))))}, true, err
	case "upper", "lower", "trim", "toChars":
		s, err := str()
		if err != nil {
			return nil, true, err
		}
		switch name {
		case "upper":
			return one(strings.ToUpper(s))
		case "lower":
			return one(strings.ToLower(s))
		case "trim":
			return one(strings.TrimSpace(s))
		}
		var out Collection
		for _, r := range s {
			out = append(out, sys(string(r)))
		}
		return out, true, nil
	case "startsWith", "endsWith", "contains", "indexOf", "matches", "split":
		s, err := str()
		if err != nil {
			return nil, true, err
		}
		a := argStr(0)
		switch name {
		case "startsWith":
			return one(strings.HasPrefix(s, a))
		case "endsWith":
			return one(strings.HasSuffix(s, a))
		case "contains":
			return one(strings.Contains(s, a))
		case "indexOf":
			i := strings.Index(s, a)
			if i > 0 {
				i = len([]rune(s[:i]))
			}
			return one(int64(i))
		case "split":
			var out Collection
			for _, p := range strings.Split(s, a) {
				out = append(out, sys(p))
			}
			return out, true, nil
		}
		re, err := regexp.Compile("(?s)" + a)
		if err != nil {
			return nil, true, fmt.Errorf("fhirpath: bad regex: %v", err)
		}
		return one(re.MatchString(s))
	case "replace", "replaceMatches":
		s, err := str()
		if err != nil || len(args) != 2 {
			return nil, true, fmt.Errorf("fhirpath: %s() needs a string and two arguments", name)
		}
		if name == "replace" {
			return one(strings.ReplaceAll(s, argStr(0), argStr(1)))
		}
		re, err := regexp.Compile(argStr(0))
		if err != nil {
			return nil, true, fmt.Errorf("fhirpath: bad regex: %v", err)
		}
		return one(re.ReplaceAllString(s, argStr(1)))
	case "substring":
		s, err := str()
		if err != nil || len(args) == 0 {
			return nil, true, fmt.Errorf("fhirpath: substring() needs a string and a start")
		}
		r := []rune(s)
		start, _ := system(args[0]).(int64)
		if start < 0 || start >= int64(len(r)) {
			return nil, true, nil
		}
		end := int64(len(r))
		if len(args) > 1 {
			l, _ := system(args[1]).(int64)
			end = min(end, start+max(l, 0))
		}
		return one(string(r[start:end]))
	case "abs", "ceiling", "floor", "truncate", "round", "sqrt", "exp", "ln", "log", "power":
		return mathFunc(name, v, args)
	case "type":
		ns, tn := typeOf(it)
		return Collection{{Value: map[string]any{"namespace": ns, "name": tn}, Type: "System.SimpleTypeInfo"}}, true, nil
	}
	return nil, false, fmt.Errorf("fhirpath: unknown function %s()", name)
}

func mathFunc(name string, v any, args []Item) (Collection, bool, error) {
	if q, ok := v.(Quantity); ok && name == "abs" {
		q.Value = Decimal{Rat: new(big.Rat).Abs(q.Value.Rat), Scale: q.Value.Scale}
		return Collection{sys(q)}, true, nil
	}
	d, ok := numeric(v)
	if !ok {
		return nil, true, fmt.Errorf("fhirpath: %s() needs a number", name)
	}
	i, isInt := v.(int64)
	f := d.Float64()
	var r float64
	switch name {
	case "abs":
		if isInt {
			return Collection{sys(max(i, -i))}, true, nil
		}
		return Collection{sys(Decimal{Rat: new(big.Rat).Abs(d.Rat), Scale: d.Scale})}, true, nil
	case "ceiling", "floor", "truncate":
		r = map[string]func(float64) float64{"ceiling": math.Ceil, "floor": math.Floor, "truncate": math.Trunc}[name](f)
		return Collection{sys(int64(r))}, true, nil
	case "round":
		p := int64(0)
		if len(args) > 0 {
			p, _ = system(args[0]).(int64)
		}
		if p < 0 {
			return nil, true, fmt.Errorf("fhirpath: round() precision must be >= 0")
		}
		dec, _ := ParseDecimal(d.Rat.FloatString(int(p)))
		return Collection{sys(dec)}, true, nil
	case "sqrt":
		r = math.Sqrt(f)
	case "exp":
		r = math.Exp(f)
	case "ln":
		r = math.Log(f)
	case "log":
		if len(args) == 0 {
			return nil, true, fmt.Errorf("fhirpath: log() needs a base")
		}
		b, _ := numeric(system(args[0]))
		r = math.Log(f) / math.Log(b.Float64())
	case "power":
		if len(args) == 0 {
			return nil, true, fmt.Errorf("fhirpath: power() needs an exponent")
		}
		e := system(args[0])
		ed, _ := numeric(e)
		r = math.Pow(f, ed.Float64())
		if _, eInt := e.(int64); isInt && eInt && !math.IsInf(r, 0) && r == math.Trunc(r) {
			return Collection{sys(int64(r))}, true, nil
		}
	}
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return nil, true, nil
	}
	dec, _ := ParseDecimal(strconv.FormatFloat(r, 'f', -1, 64))
	return Collection{sys(dec)}, true, nil
}

// convert implements the toX()/convertsToX() family.
func convert(v any, target string) (any, bool) {
	switch target {
	case "Integer":
		switch x := v.(type) {
		case int64:
			return x, true
		case bool:
			return map[bool]int64{true: 1, false: 0}[x], true
		case string:
			i, err := strconv.ParseInt(x, 10, 64)
			return i, err == nil
		}
	case "Decimal":
		switch x := v.(type) {
		case int64, Decimal:
			return toDecimal(x), true
		case bool:
			return toDecimal(map[bool]int64{true: 1, false: 0}[x]), true
		case string:
			d, err := ParseDecimal(x)
			return d, err == nil && !strings.ContainsAny(x, "eE/")
		}
	case "Boolean":
		switch x := v.(type) {
		case bool:
			return x, true
		case int64:
			return x == 1, x == 0 || x == 1
		case Decimal:
			return x.Rat.Cmp(big.NewRat(1, 1)) == 0, x.Rat.Sign() == 0 || x.Rat.Cmp(big.NewRat(1, 1)) == 0
		case string:
			switch strings.ToLower(x) {
			case "true", "t", "yes", "y", "1", "1.0":
				return true, true
			case "false", "f", "no", "n", "0", "0.0":
				return false, true
			}
		}
	case "Date", "DateTime", "Time":
		var t Temporal
		var err error
		switch x := v.(type) {
		case Temporal:
			t = x
		case string:
			if target == "Time" {
				t, err = parseTemporalLiteral("T" + x)
			} else {
				t, err = ParseDateTime(x)
			}
		default:
			return nil, false
		}
		if err != nil || (target == "Time") != (t.Kind == KindTime) {
			return nil, false
		}
		if target == "Date" {
			t.Kind, t.Prec, t.HasTZ = KindDate, min(t.Prec, Day), false
			t.T = truncate(t, t.Prec)
		} else if target == "DateTime" {
			t.Kind = KindDateTime
		}
		t.src = formatTemporal(t)
		return t, true
	case "Quantity":
		switch x := v.(type) {
		case Quantity:
			return x, true
		case int64, Decimal:
			return Quantity{Value: toDecimal(x), Unit: "1"}, true
		case string:
			num, unit, _ := strings.Cut(strings.TrimSpace(x), " ")
			d, err := ParseDecimal(num)
			unit = strings.Trim(unit, "'")
			if unit == "" {
				unit = "1"
			}
			return Quantity{Value: d, Unit: unit}, err == nil
		}
	}
	return nil, false
}
