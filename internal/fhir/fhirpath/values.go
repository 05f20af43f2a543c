package fhirpath

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Item is one element of a collection. Value is either a node of the JSON
// resource (map[string]any, string, bool, json.Number) or a FHIRPath system
// value (string, bool, int64, Decimal, Temporal, Quantity). Type is the FHIR
// type name when the evaluator knows it: the resourceType of a resource, the
// suffix of a choice element (valueQuantity -> "Quantity", valueDateTime ->
// "dateTime"), or "" when the JSON alone does not say.
type Item struct {
	Value any
	Type  string
}

// Collection is an ordered FHIRPath collection.
type Collection []Item

// Decimal is an exact decimal number with the number of fractional digits
// it was written with (its precision).
type Decimal struct {
	Rat   *big.Rat
	Scale int
}

// String formats the decimal at its precision.
func (d Decimal) String() string {
	if d.Rat == nil {
		return "0"
	}
	s := d.Rat.FloatString(d.Scale)
	return s
}

// Float64 returns the nearest float64.
func (d Decimal) Float64() float64 {
	if d.Rat == nil {
		return 0
	}
	f, _ := d.Rat.Float64()
	return f
}

// ParseDecimal parses a decimal literal such as "12", "-0.50" or "1e3".
func ParseDecimal(s string) (Decimal, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || len(s) > 400 {
		return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
	}
	scale := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		scale = j - i - 1
	}
	return Decimal{Rat: r, Scale: scale}, nil
}

func parseNumberLiteral(s string) (any, error) {
	if strings.HasSuffix(s, "L") {
		return strconv.ParseInt(strings.TrimSuffix(s, "L"), 10, 64)
	}
	if !strings.Contains(s, ".") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
	}
	return ParseDecimal(s)
}

// toDecimal converts an int64 or Decimal to Decimal.
func toDecimal(v any) Decimal {
	switch x := v.(type) {
	case int64:
		return Decimal{Rat: new(big.Rat).SetInt64(x)}
	case Decimal:
		return x
	}
	return Decimal{Rat: new(big.Rat)}
}

// Quantity is a FHIRPath quantity. Unit is the UCUM code or a calendar
// duration word ("day", "weeks").
type Quantity struct {
	Value Decimal
	Unit  string
}

func (q Quantity) String() string { return q.Value.String() + " '" + q.Unit + "'" }

// calendarUnits maps calendar duration words to their UCUM equivalent for
// comparison; the definite units (week and shorter) compare equal to UCUM.
var calendarUnits = map[string]string{
	"year": "a", "years": "a", "month": "mo", "months": "mo", "week": "wk", "weeks": "wk",
	"day": "d", "days": "d", "hour": "h", "hours": "h", "minute": "min", "minutes": "min",
	"second": "s", "seconds": "s", "millisecond": "ms", "milliseconds": "ms",
}

// system converts a JSON node to its FHIRPath system value. Typed strings
// (date, dateTime, instant, time) become Temporal; JSON numbers become int64
// or Decimal; FHIR Quantity objects become Quantity.
func system(it Item) any {
	switch v := it.Value.(type) {
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") && it.Type != "decimal" {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
		}
		if d, err := ParseDecimal(s); err == nil {
			return d
		}
		return s
	case float64:
		return Decimal{Rat: new(big.Rat).SetFloat64(v), Scale: 6}
	case int:
		return int64(v)
	case string:
		switch it.Type {
		case "date", "dateTime", "instant":
			if t, err := ParseDateTime(v); err == nil {
				return t
			}
		case "time":
			if t, err := parseTemporalLiteral("T" + v); err == nil {
				return t
			}
		}
		return v
	case map[string]any:
		if isQuantityType(it.Type) || (it.Type == "" && looksLikeQuantity(v)) {
			if q, ok := quantityOf(v); ok {
				return q
			}
		}
	}
	return it.Value
}

func isQuantityType(t string) bool {
	switch t {
	case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity":
		return true
	}
	return false
}

func looksLikeQuantity(m map[string]any) bool {
	_, hasV := m["value"]
	_, hasU := m["unit"]
	_, hasC := m["code"]
	return hasV && (hasU || hasC)
}

func quantityOf(m map[string]any) (Quantity, bool) {
	n, ok := m["value"].(json.Number)
	if !ok {
		return Quantity{}, false
	}
	d, err := ParseDecimal(string(n))
	if err != nil {
		return Quantity{}, false
	}
	unit, _ := m["code"].(string)
	if unit == "" {
		unit, _ = m["unit"].(string)
	}
	return Quantity{Value: d, Unit: unit}, true
}

// singleton returns the single item of c, or false when c is empty; more
// than one item is an error (FHIRPath singleton evaluation).
func singleton(c Collection) (Item, bool, error) {
	switch len(c) {
	case 0:
		return Item{}, false, nil
	case 1:
		return c[0], true, nil
	}
	return Item{}, false, fmt.Errorf("fhirpath: expected a single item, got %d", len(c))
}

// asBool applies singleton evaluation of collections to a boolean: empty is
// unknown (ok false), a single boolean is itself, any other single item is true.
func asBool(c Collection) (val, ok bool, err error) {
	it, ok, err := singleton(c)
	if !ok || err != nil {
		return false, false, err
	}
	if b, isB := it.Value.(bool); isB {
		return b, true, nil
	}
	return true, true, nil
}

func boolColl(b bool) Collection { return Collection{{Value: b, Type: "System.Boolean"}} }

// String renders an item's system value for output and string conversion.
func (it Item) String() string {
	switch v := system(it).(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case Decimal:
		return v.String()
	case Temporal:
		return v.String()
	case Quantity:
		return v.String()
	case map[string]any:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(it.Value)
}
