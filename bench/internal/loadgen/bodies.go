package loadgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/phivault/phivault/internal/synth"
)

// Bodies of the create and update workloads. Both benchmark programs use
// these, so the server and the SQLite baseline store the same bytes.

var vitals = []struct {
	code, display, unit, ucum string
	mean, sd                  float64
	prec                      int
}{
	{"8867-4", "Heart rate", "beats/minute", "/min", 74, 10, 0},
	{"29463-7", "Body weight", "kg", "kg", 78, 14, 1},
	{"8302-2", "Body height", "cm", "cm", 170, 9, 1},
	{"8310-5", "Body temperature", "Cel", "Cel", 36.8, 0.4, 1},
	{"9279-1", "Respiratory rate", "breaths/minute", "/min", 15, 2, 0},
	{"2708-6", "Oxygen saturation in Arterial blood", "%", "%", 97, 1.5, 0},
}

// Observation returns a vital-sign Observation (about 1 KB of JSON) about
// Patient/patientID, or, every fourth call of a generator, a blood-pressure
// panel with two components.
func Observation(r *rand.Rand, patientID string) []byte {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Second)
	o := map[string]any{
		"resourceType": "Observation",
		"status":       "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}}}},
		"subject":           map[string]any{"reference": "Patient/" + patientID},
		"effectiveDateTime": at.Format(time.RFC3339),
		"issued":            at.Add(7 * time.Minute).Format(time.RFC3339),
	}
	if r.IntN(4) == 0 {
		o["code"] = concept("http://loinc.org", "85354-9", "Blood pressure panel with all children optional")
		o["component"] = []any{
			map[string]any{"code": concept("http://loinc.org", "8480-6", "Systolic blood pressure"), "valueQuantity": qty(r.NormFloat64()*14+124, 0, "mm[Hg]", "mm[Hg]")},
			map[string]any{"code": concept("http://loinc.org", "8462-4", "Diastolic blood pressure"), "valueQuantity": qty(r.NormFloat64()*9+79, 0, "mm[Hg]", "mm[Hg]")},
		}
	} else {
		v := vitals[r.IntN(len(vitals))]
		o["code"] = concept("http://loinc.org", v.code, v.display)
		o["valueQuantity"] = qty(v.mean+v.sd*r.NormFloat64(), v.prec, v.unit, v.ucum)
	}
	b, _ := json.Marshal(o)
	return b
}

var (
	families = []string{"Okafor", "Lindqvist", "Moreau", "Nakamura", "Fernández", "Kowalski", "Haddad", "Brennan", "Ivanova", "Mensah"}
	givens   = []string{"Amara", "Johan", "Céline", "Kenji", "Lucía", "Piotr", "Rania", "Declan", "Olga", "Kwame"}
	cities   = []string{"Springfield", "Riverton", "Lakeside", "Fairview", "Maple Grove"}
)

// Patient returns a Patient with a name, identifiers, telecom and an
// address (about 1 KB of JSON).
func Patient(r *rand.Rand) []byte {
	fam, giv := families[r.IntN(len(families))], givens[r.IntN(len(givens))]
	p := map[string]any{
		"resourceType": "Patient",
		"active":       true,
		"identifier": []any{
			map[string]any{"system": "urn:oid:2.16.840.1.113883.4.1", "value": fmt.Sprintf("999-%02d-%04d", r.IntN(100), r.IntN(10000))},
			map[string]any{"type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
				"system": "https://bench.phivault.example/mrn", "value": fmt.Sprintf("B%09d", r.IntN(1e9))},
		},
		"name":      []any{map[string]any{"use": "official", "family": fam, "given": []any{giv}}},
		"gender":    []string{"female", "male"}[r.IntN(2)],
		"birthDate": time.Date(1930+r.IntN(90), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.DateOnly),
		"telecom": []any{
			map[string]any{"system": "phone", "value": fmt.Sprintf("555-01%02d", r.IntN(100)), "use": "home"},
			map[string]any{"system": "email", "value": fmt.Sprintf("%s.%s%d@example.org", giv, fam, r.IntN(1000))},
		},
		"address": []any{map[string]any{"use": "home", "line": []any{fmt.Sprintf("%d Elm Street", 1+r.IntN(999))},
			"city": cities[r.IntN(len(cities))], "state": "MA", "postalCode": fmt.Sprintf("0%04d", r.IntN(10000)), "country": "US"}},
	}
	b, _ := json.Marshal(p)
	return b
}

func concept(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code, "display": display}}, "text": display}
}

func qty(v float64, prec int, unit, code string) map[string]any {
	return map[string]any{"value": json.Number(fmt.Sprintf("%.*f", prec, v)), "unit": unit, "system": "http://unitsofmeasure.org", "code": code}
}

// Bundle is one synthetic patient's transaction bundle, ready to post,
// with its entries' resources for the baseline.
type Bundle struct {
	Body      []byte
	Resources []Resource
}

// Resource is one entry of a Bundle.
type Resource struct {
	Type string
	Body []byte
}

// TxOptions is the population the transaction workload draws from. The
// staff size is fixed so that the shared bundle (and so the references of
// every patient bundle) does not depend on how many bundles are built.
func TxOptions(seed int64) synth.Options {
	return synth.Options{Seed: seed, Patients: 1 << 20, Practitioners: 24}
}

// SharedBundle is the PUT bundle of organizations and staff that every
// patient bundle of TxOptions(seed) refers to.
func SharedBundle(seed int64) []byte {
	b, _ := json.Marshal(synth.SharedBundle(TxOptions(seed)))
	return b
}

// SynthBundles builds patient bundles first..first+n-1 of TxOptions(seed).
func SynthBundles(seed int64, first, n int) []Bundle {
	opt := TxOptions(seed)
	out := make([]Bundle, n)
	for i := range out {
		b := synth.PatientBundle(opt, first+i)
		body, _ := json.Marshal(b)
		out[i].Body = body
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			res, _ := e.(map[string]any)["resource"].(map[string]any)
			rb, _ := json.Marshal(res)
			t, _ := res["resourceType"].(string)
			out[i].Resources = append(out[i].Resources, Resource{Type: t, Body: rb})
		}
	}
	return out
}
