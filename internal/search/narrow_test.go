package search

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDateRangeClauses: two or three bounds on one date parameter
// (date=ge2019-03-01&date=lt2019-04-01) find exactly the resources whose
// value meets every bound, as the R4 prefixes define it, over values of
// every precision, periods open on either side, and bounds that do not
// meet (date=ge2020&date=le2019, which a period spanning both matches).
func TestDateRangeClauses(t *testing.T) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(3, 9))
	day := func() string {
		return fmt.Sprintf("%d-%02d-%02d", 2015+rng.IntN(10), 1+rng.IntN(12), 1+rng.IntN(28))
	}
	value := func() (string, any) {
		d := day()
		switch rng.IntN(7) {
		case 0:
			return "effectiveDateTime", d[:4]
		case 1:
			return "effectiveDateTime", d[:7]
		case 2:
			return "effectiveDateTime", d
		case 3:
			return "effectiveDateTime", d + "T23:59:59Z"
		case 4:
			a, b := d, day()
			if b < a {
				a, b = b, a
			}
			return "effectivePeriod", map[string]any{"start": a, "end": b}
		case 5:
			return "effectivePeriod", map[string]any{"start": d}
		default:
			return "effectivePeriod", map[string]any{"end": d}
		}
	}
	// Each Observation's effective[x] is also a Condition's onset[x], whose
	// parameter (onset-date) is two casts of the one element.
	var all, conds []map[string]any
	for i := range 300 {
		o := map[string]any{"resourceType": "Observation", "id": fmt.Sprintf("o%03d", i), "status": "final",
			"code": map[string]any{"text": "x"}}
		c := map[string]any{"resourceType": "Condition", "id": fmt.Sprintf("c%03d", i),
			"subject": map[string]any{"reference": "Patient/p"}}
		if i%25 != 0 { // a few have no date at all
			k, v := value()
			o[k], c[strings.Replace(k, "effective", "onset", 1)] = v, v
		}
		all, conds = append(all, o), append(conds, c)
	}
	e.load(all...)
	e.load(conds...)

	ops := []string{"eq", "gt", "lt", "ge", "le", "sa", "eb"}
	bound := func() string {
		d := day()
		return ops[rng.IntN(len(ops))] + []string{d[:4], d[:7], d}[rng.IntN(3)]
	}
	queries := [][]string{{"ge2019-03-01", "lt2019-04-01"}, {"ge2020", "le2019"}, {"gt2018-06", "lt2018-07-15", "ge2018-07"}}
	for range 60 {
		queries = append(queries, []string{bound(), bound()})
	}
	narrowed := 0
	for _, bounds := range queries {
		q := url.Values{"date": bounds, "_count": {"1000"}}
		if e.narrowed("Observation", q) {
			narrowed++
		}
		var want []string
		for _, o := range all {
			lo, hi, ok := effective(o)
			match := ok
			for _, b := range bounds {
				match = match && oracleDate(b, lo, hi)
			}
			if match {
				want = append(want, "Observation/"+o["id"].(string))
			}
		}
		got := e.get("Observation?" + q.Encode())
		if got.status != 200 {
			t.Fatalf("%v: status %d", bounds, got.status)
		}
		if !slices.Equal(sorted(got.matches), sorted(want)) {
			t.Errorf("date=%v: got %d matches %v, want %d %v", bounds, len(got.matches), sorted(got.matches), len(want), sorted(want))
		}
		for i, w := range want {
			want[i] = strings.Replace(w, "Observation/o", "Condition/c", 1)
		}
		got = e.get("Condition?" + url.Values{"onset-date": bounds, "_count": {"1000"}}.Encode())
		if got.status != 200 || !slices.Equal(sorted(got.matches), sorted(want)) {
			t.Errorf("onset-date=%v: %d, got %d matches %v, want %d %v", bounds, got.status, len(got.matches), sorted(got.matches), len(want), sorted(want))
		}
	}
	if narrowed < 10 {
		t.Errorf("only %d of %d queries were narrowed to the intersection of their bounds", narrowed, len(queries))
	}
}

// TestRangeNarrowing: bounds that meet on a one-value parameter are
// covered by the buckets of their intersection alone; bounds that do not
// meet, and parameters that can give several values, keep every clause's
// own buckets.
func TestRangeNarrowing(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		typ, query string
		narrow     bool
	}{
		{"Observation", "date=ge2019-03-01&date=lt2019-04-01", true},
		{"Observation", "_lastUpdated=gt2019-03-01&_lastUpdated=le2019-03-31", true},
		{"Patient", "birthdate=ge1970&birthdate=lt1971", true},
		{"Observation", "date=ge2020&date=le2019", false},                    // the bounds do not meet
		{"Observation", "date=ge2019-03-01,ge2020&date=lt2019-04-01", false}, // an OR of bounds
		{"Composition", "period=ge2019-03-01&period=lt2019-04-01", false},    // one period per event
		{"Observation", "date=ge2019-03-01", false},
		{"Observation", "value-quantity=gt5.4&value-quantity=le10", true},
		{"Observation", "value-quantity=gt10&value-quantity=lt5", false},                     // the ranges do not meet
		{"Observation", "component-value-quantity=gt5&component-value-quantity=lt10", false}, // one per component
	} {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := e.eng.parse(context.Background(), tt.typ, q, parseOpts{})
		if err != nil {
			t.Fatalf("%s?%s: %v", tt.typ, tt.query, err)
		}
		groups := len(pl.positive().All)
		if got := groups < len(pl.clauses); got != tt.narrow {
			t.Errorf("%s?%s: %d token groups for %d clauses; narrowed %v, want %v", tt.typ, tt.query, groups, len(pl.clauses), got, tt.narrow)
		}
		if tt.narrow {
			if n := len(pl.positive().All[0]); n > 40 {
				t.Errorf("%s?%s: the narrowed clause has %d tokens", tt.typ, tt.query, n)
			}
		}
	}
}

// TestDateRangeSeveralValues: a resource whose values meet the bounds
// separately (one event before April, another after March, none within)
// matches, as each clause is met by some value.
func TestDateRangeSeveralValues(t *testing.T) {
	e := newEnv(t)
	comp := func(id string, periods ...[2]string) map[string]any {
		var events []any
		for _, p := range periods {
			events = append(events, map[string]any{"period": map[string]any{"start": p[0], "end": p[1]}})
		}
		return map[string]any{"resourceType": "Composition", "id": id, "status": "final",
			"type": map[string]any{"text": "note"}, "date": "2019-07-01", "title": "t",
			"author": []any{map[string]any{"display": "a"}}, "event": events}
	}
	e.load(
		comp("split", [2]string{"2019-01-01", "2019-01-31"}, [2]string{"2019-06-01", "2019-06-30"}),
		comp("within", [2]string{"2019-03-10", "2019-03-12"}),
		comp("before", [2]string{"2018-01-01", "2018-01-31"}),
	)
	got := e.get("Composition?period=ge2019-03-01&period=lt2019-04-01")
	if want := []string{"Composition/split", "Composition/within"}; got.status != 200 || !slices.Equal(sorted(got.matches), want) {
		t.Errorf("got %d %v, want %v", got.status, sorted(got.matches), want)
	}
}

// TestSingleValued: which R4 date parameters give a resource at most one
// value, from their expressions and the elements' cardinalities.
func TestSingleValued(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		typ, code string
		want      bool
	}{
		{"Observation", "date", true},         // Observation.effective
		{"Patient", "birthdate", true},        // Patient.birthDate
		{"Encounter", "date", true},           // Encounter.period
		{"Observation", "_lastUpdated", true}, // Resource.meta.lastUpdated
		{"Composition", "period", false},      // Composition.event.period, event 0..*
		{"Condition", "onset-date", true},     // two casts of the one Condition.onset
		{"Patient", "death-date", true},       // (Patient.deceased as dateTime)
		{"Goal", "target-date", false},        // (Goal.target.due as date), target 0..*
		{"Immunization", "reaction-date", false},
		{"MedicationRequest", "date", false}, // dosageInstruction.timing.event
	} {
		p, ok := e.eng.params().Lookup(tt.typ, tt.code)
		if !ok {
			t.Fatalf("no parameter %s of %s", tt.code, tt.typ)
		}
		if got := singleValued(p, tt.typ); got != tt.want {
			t.Errorf("singleValued(%s %s: %q) = %v, want %v", tt.typ, tt.code, p.Expression, got, tt.want)
		}
	}
}

// TestQuantityRangeClauses: two bounds on value-quantity find exactly what
// each bound alone finds in common (value[x] holds one value, so the
// bounds' common matches are the AND's), over values of every magnitude
// and sign and bounds of every prefix and precision.
func TestQuantityRangeClauses(t *testing.T) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(5, 11))
	num := func() string {
		v := fmt.Sprintf("%.*f", rng.IntN(4), rng.Float64()*math.Pow10(rng.IntN(5)-1))
		if rng.IntN(8) == 0 {
			v = "-" + v
		}
		return v
	}
	var obs []map[string]any
	for i := range 300 {
		o := map[string]any{"resourceType": "Observation", "id": fmt.Sprintf("q%03d", i), "status": "final",
			"code": map[string]any{"text": "x"}}
		if i%20 != 0 {
			f, _ := strconv.ParseFloat(num(), 64)
			o["valueQuantity"] = map[string]any{"value": f, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
		}
		obs = append(obs, o)
	}
	e.load(obs...)
	ops := []string{"eq", "gt", "lt", "ge", "le", "sa", "eb", "ap"}
	narrowed := 0
	for range 60 {
		bounds := []string{ops[rng.IntN(len(ops))] + num(), ops[rng.IntN(len(ops))] + num()}
		if rng.IntN(4) == 0 {
			bounds[1] += "|http://unitsofmeasure.org|mg"
		}
		var want []string
		for i, b := range bounds {
			one := e.get("Observation?" + url.Values{"value-quantity": {b}, "_count": {"1000"}}.Encode())
			if one.status != 200 {
				t.Fatalf("%s: status %d", b, one.status)
			}
			if i == 0 {
				want = sorted(one.matches)
			} else {
				want = slices.DeleteFunc(want, func(id string) bool { return !slices.Contains(one.matches, id) })
			}
		}
		q := url.Values{"value-quantity": bounds, "_count": {"1000"}}
		if e.narrowed("Observation", q) {
			narrowed++
		}
		got := e.get("Observation?" + q.Encode())
		if got.status != 200 || !slices.Equal(sorted(got.matches), want) {
			t.Errorf("value-quantity=%v: %d, got %v, want %v", bounds, got.status, sorted(got.matches), want)
		}
	}
	if narrowed < 10 {
		t.Errorf("only %d of 60 queries were narrowed", narrowed)
	}
}

// BenchmarkDateRange runs a one-month range given as two bounds over the
// lab population (6,000 Observations over 25 years), side by side as the
// engine plans it (the month's buckets, one token group) and as it did
// before (each bound covered by its own half-open range, two groups).
func BenchmarkDateRange(b *testing.B) {
	e := labEnv(b)
	ctx := context.Background()
	q := url.Values{"date": {"ge2013-03-01", "lt2013-04-01"}, "_count": {"20"}}
	narrow, err := e.eng.parse(ctx, "Observation", q, parseOpts{})
	if err != nil {
		b.Fatal(err)
	}
	wide := *narrow
	wide.clauses = slices.Clone(narrow.clauses)
	for i, v := range q["date"] {
		one, err := e.eng.parse(ctx, "Observation", url.Values{"date": {v}}, parseOpts{})
		if err != nil {
			b.Fatal(err)
		}
		wide.clauses[i].toks, wide.clauses[i].covered = one.clauses[0].toks, false
	}
	a, err := e.eng.ids(ctx, narrow, 0)
	if err != nil {
		b.Fatal(err)
	}
	w, err := e.eng.ids(ctx, &wide, 0)
	if err != nil || !slices.Equal(a, w) || len(a) == 0 {
		b.Fatalf("one group gives %d ids, two groups %d (%v)", len(a), len(w), err)
	}
	for _, c := range []struct {
		name string
		pl   *plan
	}{{"one-group", narrow}, {"two-groups", &wide}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.eng.ids(ctx, c.pl, 20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// narrowed reports whether the plan of typ?q lets its second clause add no
// token group (narrowRanges covered it).
func (e *env) narrowed(typ string, q url.Values) bool {
	e.t.Helper()
	pl, err := e.eng.parse(context.Background(), typ, q, parseOpts{})
	if err != nil {
		e.t.Fatal(err)
	}
	return pl.clauses[1].covered
}
