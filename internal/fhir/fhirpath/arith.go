package fhirpath

import (
	"fmt"
	"math/big"
	"time"
)

// arith implements + - * / div mod on singletons; empty operands give empty.
func arith(op string, l, r Collection) (Collection, error) {
	a, aok, err1 := singleton(l)
	b, bok, err2 := singleton(r)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("fhirpath: %s needs singletons", op)
	}
	if !aok || !bok {
		return nil, nil
	}
	av, bv := system(a), system(b)
	if s, ok := av.(string); ok && op == "+" {
		if t, ok := bv.(string); ok {
			return Collection{sys(s + t)}, nil
		}
	}
	if t, ok := av.(Temporal); ok {
		if q, ok := bv.(Quantity); ok && (op == "+" || op == "-") {
			res, err := addDuration(t, q, op == "-")
			if err != nil {
				return nil, err
			}
			return Collection{sys(res)}, nil
		}
	}
	if s, ok := av.(string); ok {
		if q, ok := bv.(Quantity); ok && (op == "+" || op == "-") {
			if t, err := ParseDateTime(s); err == nil {
				res, err := addDuration(t, q, op == "-")
				if err != nil {
					return nil, err
				}
				return Collection{sys(res)}, nil
			}
		}
	}
	if qa, ok := av.(Quantity); ok {
		if qb, ok := bv.(Quantity); ok && (op == "+" || op == "-") && unitKey(qa.Unit) == unitKey(qb.Unit) {
			d, _ := decOp(op, qa.Value, qb.Value)
			return Collection{sys(Quantity{Value: d, Unit: qa.Unit})}, nil
		}
		if n, ok := numeric(bv); ok && (op == "*" || op == "/") {
			d, ok := decOp(op, qa.Value, n)
			if !ok {
				return nil, nil
			}
			return Collection{sys(Quantity{Value: d, Unit: qa.Unit})}, nil
		}
	}
	ia, aInt := av.(int64)
	ib, bInt := bv.(int64)
	if aInt && bInt && op != "/" {
		switch op {
		case "+":
			return Collection{sys(ia + ib)}, nil
		case "-":
			return Collection{sys(ia - ib)}, nil
		case "*":
			return Collection{sys(ia * ib)}, nil
		case "div", "mod":
			if ib == 0 {
				return nil, nil
			}
			if op == "div" {
				return Collection{sys(ia / ib)}, nil
			}
			return Collection{sys(ia % ib)}, nil
		}
	}
	x, xok := numeric(av)
	y, yok := numeric(bv)
	if !xok || !yok {
		return nil, fmt.Errorf("fhirpath: cannot apply %s to %s and %s", op, a.String(), b.String())
	}
	d, ok := decOp(op, x, y)
	if !ok {
		return nil, nil
	}
	return Collection{sys(d)}, nil
}

// decOp applies op to decimals; ok is false on division by zero.
func decOp(op string, x, y Decimal) (Decimal, bool) {
	r := new(big.Rat)
	scale := max(x.Scale, y.Scale)
	switch op {
	case "+":
		r.Add(x.Rat, y.Rat)
	case "-":
		r.Sub(x.Rat, y.Rat)
	case "*":
		r.Mul(x.Rat, y.Rat)
		scale = x.Scale + y.Scale
	case "/", "div", "mod":
		if y.Rat.Sign() == 0 {
			return Decimal{}, false
		}
		r.Quo(x.Rat, y.Rat)
		if op == "/" {
			scale = 8
			if r.IsInt() {
				scale = 0
			}
		} else {
			q := new(big.Int).Quo(r.Num(), r.Denom())
			if op == "div" {
				r.SetInt(q)
				scale = 0
			} else {
				r.Sub(x.Rat, new(big.Rat).Mul(new(big.Rat).SetInt(q), y.Rat))
			}
		}
	}
	return Decimal{Rat: r, Scale: scale}, true
}

func negate(c Collection) (Collection, error) {
	it, ok, err := singleton(c)
	if !ok || err != nil {
		return nil, err
	}
	switch v := system(it).(type) {
	case int64:
		return Collection{sys(-v)}, nil
	case Decimal:
		return Collection{sys(Decimal{Rat: new(big.Rat).Neg(v.Rat), Scale: v.Scale})}, nil
	case Quantity:
		v.Value = Decimal{Rat: new(big.Rat).Neg(v.Value.Rat), Scale: v.Value.Scale}
		return Collection{sys(v)}, nil
	}
	return nil, fmt.Errorf("fhirpath: cannot negate %s", it.String())
}

// addDuration adds (or subtracts) a time-valued quantity to a date/time,
// ignoring units finer than the value's precision as the spec requires.
func addDuration(t Temporal, q Quantity, sub bool) (Temporal, error) {
	unit := q.Unit
	if c := calendarUnits[unit]; c != "" {
		unit = c
	}
	n := q.Value.Float64()
	if sub {
		n = -n
	}
	whole := int(n)
	var out time.Time
	switch unit {
	case "a":
		out = t.T.AddDate(whole, 0, 0)
	case "mo":
		out = t.T.AddDate(0, whole, 0)
	case "wk":
		out = t.T.AddDate(0, 0, 7*whole)
	case "d":
		out = t.T.AddDate(0, 0, whole)
	case "h":
		out = t.T.Add(time.Duration(whole) * time.Hour)
	case "min":
		out = t.T.Add(time.Duration(whole) * time.Minute)
	case "s":
		out = t.T.Add(time.Duration(n * float64(time.Second)))
	case "ms":
		out = t.T.Add(time.Duration(n * float64(time.Millisecond)))
	default:
		return Temporal{}, fmt.Errorf("fhirpath: cannot add %s to a date", q.String())
	}
	res := t
	res.T = out
	res.src = formatTemporal(res)
	return res, nil
}

// formatTemporal renders a Temporal at its precision.
func formatTemporal(t Temporal) string {
	layouts := map[Precision]string{Year: "2006", Month: "2006-01", Day: "2006-01-02",
		Hour: "2006-01-02T15", Minute: "2006-01-02T15:04", Second: "2006-01-02T15:04:05",
		Millisecond: "2006-01-02T15:04:05.000"}
	l := layouts[t.Prec]
	if t.Kind == KindTime {
		l = l[len("2006-01-02T"):]
	}
	if t.HasTZ && t.Kind == KindDateTime {
		l += "Z07:00"
	}
	return t.T.Format(l)
}
