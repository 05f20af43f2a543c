package search

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault/internal/fhir/searchparam"
)

type qcase struct {
	typ   string
	query string
	want  func(m map[string]any) bool
}

func dateCase(q string) qcase {
	return qcase{"Observation", "date=" + url.QueryEscape(q), func(m map[string]any) bool {
		lo, hi, ok := effective(m)
		return ok && oracleDate(q, lo, hi)
	}}
}

func qtyCase(query string, fn func(v float64, code string) bool) qcase {
	return qcase{"Observation", query, func(m map[string]any) bool {
		v, c, ok := quantity(m)
		return ok && fn(v, c)
	}}
}

func hasFamilyPrefix(m map[string]any, p string) bool {
	for _, n := range m["name"].([]any) {
		f := n.(map[string]any)["family"].(string)
		if strings.HasPrefix(searchparam.Normalize(f), p) {
			return true
		}
	}
	return false
}

func cases() []qcase {
	var cs []qcase
	for _, d := range []string{"2015", "2019-03", "2020-07-14", "2018-05-06T10:00:00Z", "2021-01-01T00:00:00+02:00"} {
		for _, p := range []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"} {
			cs = append(cs, dateCase(p+d))
		}
	}
	cs = append(cs,
		qtyCase("value-quantity=100", func(v float64, _ string) bool { return v >= 99.5 && v < 100.5 }),
		qtyCase("value-quantity=100.0", func(v float64, _ string) bool { return v >= 99.95 && v < 100.05 }),
		qtyCase("value-quantity=gt250", func(v float64, _ string) bool { return v > 250 }),
		qtyCase("value-quantity=le5.5", func(v float64, _ string) bool { return v <= 5.5 }),
		qtyCase("value-quantity=ne100", func(v float64, _ string) bool { return !(v >= 99.5 && v < 100.5) }),
		qtyCase("value-quantity=ap100", func(v float64, _ string) bool { return v >= 90 && v <= 110 }),
		qtyCase("value-quantity=lt1e2||kg", func(v float64, c string) bool { return v < 100 && c == "kg" }),
		qtyCase("value-quantity=ge120|http://unitsofmeasure.org|mm[Hg]", func(v float64, c string) bool { return v >= 120 && c == "mm[Hg]" }),
		qtyCase("value-quantity=gt10|http://other.org|kg", func(float64, string) bool { return false }),
		qcase{"Observation", "code=2339-0", func(m map[string]any) bool { return str(m, "code", "text") == "Glucose" }},
		qcase{"Observation", "code=http://loinc.org|2339-0,http://loinc.org|718-7", func(m map[string]any) bool {
			return str(m, "code", "text") == "Glucose" || str(m, "code", "text") == "Hemoglobin"
		}},
		qcase{"Observation", "code:not=2339-0", func(m map[string]any) bool { return str(m, "code", "text") != "Glucose" }},
		qcase{"Observation", "code:text=body", func(m map[string]any) bool { return str(m, "code", "text") == "Body weight" }},
		qcase{"Observation", "code:text=systolic blood", func(m map[string]any) bool { return strings.HasPrefix(str(m, "code", "text"), "Systolic") }},
		qcase{"Observation", "category=laboratory&status=final,amended", func(m map[string]any) bool {
			c := m["category"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
			return c == "laboratory" && (m["status"] == "final" || m["status"] == "amended")
		}},
		qcase{"Observation", "encounter:missing=true", func(m map[string]any) bool { return m["encounter"] == nil }},
		qcase{"Observation", "encounter:missing=false", func(m map[string]any) bool { return m["encounter"] != nil }},
		qcase{"Observation", "date:missing=true", func(m map[string]any) bool { _, _, ok := effective(m); return !ok }},
		qcase{"Observation", "value-quantity:missing=true", func(m map[string]any) bool { _, _, ok := quantity(m); return !ok }},
		qcase{"Observation", "subject=Patient/p03", func(m map[string]any) bool { return refOf(m, "subject") == "Patient/p03" }},
		qcase{"Observation", "subject=p03", func(m map[string]any) bool { return refOf(m, "subject") == "Patient/p03" }},
		qcase{"Observation", "subject:Patient=p03", func(m map[string]any) bool { return refOf(m, "subject") == "Patient/p03" }},
		qcase{"Observation", "patient=" + testBase + "/Patient/p07", func(m map[string]any) bool { return refOf(m, "subject") == "Patient/p07" }},
		qcase{"Observation", "patient=p07&date=ge2018&_sort=-date", func(m map[string]any) bool {
			lo, hi, ok := effective(m)
			return refOf(m, "subject") == "Patient/p07" && ok && oracleDate("ge2018", lo, hi)
		}},
		qcase{"Patient", "family=mil", func(m map[string]any) bool { return hasFamilyPrefix(m, "mil") }},
		qcase{"Patient", "family=muller", func(m map[string]any) bool { return hasFamilyPrefix(m, "muller") }},
		qcase{"Patient", "family:exact=Müller", func(m map[string]any) bool { return hasFamilyPrefix(m, "muller") }},
		qcase{"Patient", "family:exact=muller", func(m map[string]any) bool { return false }},
		qcase{"Patient", "family:contains=ll", func(m map[string]any) bool {
			return strings.Contains(searchparam.Normalize(m["name"].([]any)[0].(map[string]any)["family"].(string)), "ll")
		}},
		qcase{"Patient", "name=mary ann", func(m map[string]any) bool {
			return m["name"].([]any)[0].(map[string]any)["given"].([]any)[0] == "Mary Ann"
		}},
		qcase{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MR5", func(m map[string]any) bool { return m["id"] == "p05" }},
		qcase{"Patient", "identifier=urn:mrn|MR12", func(m map[string]any) bool { return m["id"] == "p12" }},
		qcase{"Patient", "active=true", func(m map[string]any) bool { return m["active"] == true }},
		qcase{"Patient", "active:missing=true", func(m map[string]any) bool { return m["active"] == nil }},
		qcase{"Patient", "active:not=true", func(m map[string]any) bool { return m["active"] != true }},
		qcase{"Patient", "birthdate=lt1960", func(m map[string]any) bool {
			s, _ := m["birthDate"].(string)
			return s != "" && s < "1960"
		}},
		qcase{"Patient", "organization:identifier=urn:org|O-1", func(m map[string]any) bool { return false }},
		qcase{"Patient", "organization=Organization/org1&gender=female", func(m map[string]any) bool {
			return refOf(m, "managingOrganization") == "Organization/org1" && m["gender"] == "female"
		}},
		qcase{"Patient", "_id=p01,p02,zz", func(m map[string]any) bool { return m["id"] == "p01" || m["id"] == "p02" }},
		qcase{"Encounter", "date=ge2020-06-01&date=lt2022", func(m map[string]any) bool {
			lo, hi, _ := effective(map[string]any{"effectivePeriod": m["period"]})
			return oracleDate("ge2020-06-01", lo, hi) && oracleDate("lt2022", lo, hi)
		}},
	)
	return cs
}

func TestSearchCases(t *testing.T) {
	e := newEnv(t)
	data := fixture()
	e.load(data...)
	for _, c := range cases() {
		var want []string
		for _, m := range data {
			if m["resourceType"] == c.typ && c.want(m) {
				want = append(want, fmt.Sprint(c.typ, "/", m["id"]))
			}
		}
		want = sorted(want)
		for _, count := range []int{7, 50} {
			got := e.walk(fmt.Sprintf("%s?%s&_count=%d", c.typ, c.query, count))
			if diff := cmp.Diff(want, sorted(got)); diff != "" {
				t.Errorf("%s?%s (_count=%d): %d want, %d got (-want +got):\n%s", c.typ, c.query, count, len(want), len(got), diff)
			}
		}
		b := e.get(c.typ + "?" + c.query + "&_total=accurate&_count=3")
		if !b.hasTotal || b.total != len(want) {
			t.Errorf("%s?%s: total %d (%v), want %d", c.typ, c.query, b.total, b.hasTotal, len(want))
		}
	}
	_ = math.Inf
}
