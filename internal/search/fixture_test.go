package search

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

const catSys = "http://terminology.hl7.org/CodeSystem/observation-category"

var (
	families = []string{"Müller", "Miller", "Smith", "Smythe", "O'Brien", "Nguyen", "Garcia", "Mills"}
	givens   = []string{"Anna", "Ann", "Zoë", "Peter", "Pete", "Li", "José", "Mary Ann"}
	loinc    = []struct{ code, display, unit string }{
		{"2339-0", "Glucose", "mg/dL"}, {"29463-7", "Body weight", "kg"}, {"8480-6", "Systolic blood pressure", "mm[Hg]"}, {"718-7", "Hemoglobin", "g/dL"},
	}
)

// fixture builds a deterministic population with dates at every precision,
// periods (closed and open), quantities and references.
func fixture() []map[string]any {
	r := rand.New(rand.NewPCG(7, 11))
	var out []map[string]any
	for i := range 3 {
		out = append(out, map[string]any{"resourceType": "Organization", "id": fmt.Sprintf("org%d", i), "name": fmt.Sprintf("Clinic %c", 'A'+i),
			"identifier": []any{map[string]any{"system": "urn:org", "value": fmt.Sprintf("O-%d", i)}}})
	}
	for i := range 40 {
		p := map[string]any{"resourceType": "Patient", "id": fmt.Sprintf("p%02d", i),
			"name":                 []any{map[string]any{"family": families[i%len(families)], "given": []any{givens[(i*3)%len(givens)]}}},
			"gender":               []string{"male", "female", "other"}[i%3],
			"managingOrganization": map[string]any{"reference": fmt.Sprintf("Organization/org%d", i%3)},
			"identifier": []any{map[string]any{"system": "urn:mrn", "value": fmt.Sprintf("MR%d", i),
				"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}}}}},
		}
		y := 1930 + r.IntN(90)
		switch i % 4 {
		case 0:
			p["birthDate"] = fmt.Sprintf("%d", y)
		case 1:
			p["birthDate"] = fmt.Sprintf("%d-%02d", y, 1+r.IntN(12))
		case 2:
			p["birthDate"] = fmt.Sprintf("%d-%02d-%02d", y, 1+r.IntN(12), 1+r.IntN(28))
		}
		if i%5 != 0 {
			p["active"] = i%2 == 0
		}
		out = append(out, p)
	}
	for i := range 60 {
		s := time.Date(2015+r.IntN(10), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), 0, 0, 0, time.UTC)
		per := map[string]any{"start": s.Format(time.RFC3339)}
		if i%6 != 0 {
			per["end"] = s.Add(time.Duration(r.IntN(200)) * time.Hour).Format(time.RFC3339)
		}
		out = append(out, map[string]any{"resourceType": "Encounter", "id": fmt.Sprintf("e%02d", i), "status": "finished",
			"class":           map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"subject":         map[string]any{"reference": fmt.Sprintf("Patient/p%02d", i%40)},
			"serviceProvider": map[string]any{"reference": fmt.Sprintf("Organization/org%d", i%3)},
			"period":          per})
	}
	for i := range 400 {
		l := loinc[r.IntN(len(loinc))]
		cat := "laboratory"
		if l.code == "29463-7" || l.code == "8480-6" {
			cat = "vital-signs"
		}
		o := map[string]any{"resourceType": "Observation", "id": fmt.Sprintf("o%03d", i), "status": []string{"final", "amended", "preliminary"}[i%3],
			"category": []any{map[string]any{"coding": []any{map[string]any{"system": catSys, "code": cat}}}},
			"code":     map[string]any{"text": l.display, "coding": []any{map[string]any{"system": "http://loinc.org", "code": l.code, "display": l.display}}},
			"subject":  map[string]any{"reference": fmt.Sprintf("Patient/p%02d", r.IntN(40))},
		}
		if i%4 != 0 {
			o["encounter"] = map[string]any{"reference": fmt.Sprintf("Encounter/e%02d", r.IntN(60))}
		}
		t := time.Date(2010+r.IntN(16), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
		switch i % 7 {
		case 0:
			o["effectiveDateTime"] = t.Format("2006")
		case 1:
			o["effectiveDateTime"] = t.Format("2006-01")
		case 2:
			o["effectiveDateTime"] = t.Format("2006-01-02")
		case 3:
			o["effectiveDateTime"] = t.In(time.FixedZone("", 2*3600)).Format(time.RFC3339)
		case 4:
			o["effectivePeriod"] = map[string]any{"start": t.Format("2006-01-02"), "end": t.AddDate(0, r.IntN(30), r.IntN(40)).Format("2006-01-02")}
		case 5:
			o["effectivePeriod"] = map[string]any{"start": t.Format(time.RFC3339)}
		}
		switch {
		case i%10 == 9:
			o["valueString"] = "see note"
		case i%10 != 8:
			v := float64(r.IntN(30000)) / 100
			if i%3 == 0 {
				v = float64(r.IntN(300))
			}
			o["valueQuantity"] = map[string]any{"value": v, "unit": l.unit, "system": "http://unitsofmeasure.org", "code": l.unit}
		}
		out = append(out, o)
	}
	return out
}

// The oracle: what a resource holds, read directly from its JSON.

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, _ := cur.(map[string]any)
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

func refOf(m map[string]any, k string) string { return str(m, k, "reference") }

// effective returns the Observation's effective interval.
func effective(m map[string]any) (lo, hi time.Time, ok bool) {
	if s := str(m, "effectiveDateTime"); s != "" {
		lo, hi, _, err := searchparam.ParseDate(s)
		return lo, hi, err == nil
	}
	p, _ := m["effectivePeriod"].(map[string]any)
	if p == nil {
		return
	}
	lo, hi = searchparam.MinTime, searchparam.MaxTime
	if s, _ := p["start"].(string); s != "" {
		lo, _, _, _ = searchparam.ParseDate(s)
	}
	if s, _ := p["end"].(string); s != "" {
		_, hi, _, _ = searchparam.ParseDate(s)
	}
	return lo, hi, true
}

// oracleDate applies a FHIR date prefix to a target interval, written from
// the R4 definitions.
func oracleDate(q string, lo, hi time.Time) bool {
	op := "eq"
	for _, p := range []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"} {
		if len(q) > 2 && q[:2] == p {
			op, q = p, q[2:]
		}
	}
	ql, qh, _, err := searchparam.ParseDate(q)
	if err != nil {
		panic(err)
	}
	within := !lo.Before(ql) && !hi.After(qh)
	switch op {
	case "eq":
		return within
	case "ne":
		return !within
	case "gt":
		return hi.After(qh)
	case "lt":
		return lo.Before(ql)
	case "ge":
		return hi.After(qh) || within
	case "le":
		return lo.Before(ql) || within
	case "sa":
		return lo.After(qh)
	case "eb":
		return hi.Before(ql)
	}
	panic(op)
}

func quantity(m map[string]any) (float64, string, bool) {
	q, _ := m["valueQuantity"].(map[string]any)
	if q == nil {
		return 0, "", false
	}
	return q["value"].(float64), q["code"].(string), true
}

func normalizeForTest(s string) string { return searchparam.Normalize(s) }
