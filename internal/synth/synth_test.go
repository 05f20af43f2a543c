package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func entries(b map[string]any) []map[string]any { return list(b["entry"]) }

func resource(e map[string]any) map[string]any { return e["resource"].(map[string]any) }

func TestDeterministic(t *testing.T) {
	opt := Options{Seed: 42, Patients: 25}
	a, b := mustJSON(t, Generate(opt)), mustJSON(t, Generate(opt))
	if !bytes.Equal(a, b) {
		t.Fatal("same options gave different output")
	}
	var viaIter []map[string]any
	for bundle := range Bundles(opt) {
		viaIter = append(viaIter, bundle)
	}
	if !bytes.Equal(a, mustJSON(t, viaIter)) {
		t.Fatal("Bundles differs from Generate")
	}
	if !bytes.Equal(mustJSON(t, SharedBundle(opt)), mustJSON(t, viaIter[0])) {
		t.Fatal("SharedBundle differs from bundle 0")
	}
	if !bytes.Equal(mustJSON(t, PatientBundle(opt, 17)), mustJSON(t, viaIter[18])) {
		t.Fatal("PatientBundle(17) differs from bundle 18")
	}
	// A patient does not depend on how many patients follow it (with the same staff).
	if !bytes.Equal(mustJSON(t, PatientBundle(Options{Seed: 42, Patients: 500, Practitioners: 12}, 3)), mustJSON(t, viaIter[4])) {
		t.Fatal("patient 3 depends on the population size")
	}
	if bytes.Equal(a, mustJSON(t, Generate(Options{Seed: 43, Patients: 25}))) {
		t.Fatal("different seeds gave the same output")
	}
	// Early termination of the iterator is honoured.
	n := 0
	for range Bundles(opt) {
		if n++; n == 3 {
			break
		}
	}
}

func countTypes(bundles []map[string]any) map[string]int {
	counts := map[string]int{}
	for _, b := range bundles {
		for _, e := range entries(b) {
			counts[resource(e)["resourceType"].(string)]++
		}
	}
	return counts
}

func TestCounts(t *testing.T) {
	bundles := Generate(Options{Seed: 7})
	if len(bundles) != 1+DefaultPatients {
		t.Fatalf("got %d bundles, want %d", len(bundles), 1+DefaultPatients)
	}
	counts := countTypes(bundles)
	total := 0
	for _, n := range counts {
		total += n
	}
	t.Logf("resources: %d %v", total, counts)
	exact := map[string]int{"Patient": 100, "CareTeam": 100, "Organization": 3, "Location": 5, "Practitioner": 12, "PractitionerRole": 12}
	for typ, want := range exact {
		if counts[typ] != want {
			t.Errorf("%s: got %d, want %d", typ, counts[typ], want)
		}
	}
	ranges := map[string][2]int{"Encounter": {500, 1500}, "Condition": {300, 1500}, "Observation": {3000, 9000}, "MedicationRequest": {150, 1500}}
	for typ, r := range ranges {
		if counts[typ] < r[0] || counts[typ] > r[1] {
			t.Errorf("%s: got %d, want %d..%d", typ, counts[typ], r[0], r[1])
		}
	}
	if total < 5000 || total > 10000 {
		t.Errorf("total resources %d, want 5000..10000", total)
	}
	for _, b := range bundles[1:] {
		n := countTypes([]map[string]any{b})["Encounter"]
		if n < 5 || n > 15 {
			t.Errorf("patient with %d encounters, want 5..15", n)
		}
	}
}

var literalRef = regexp.MustCompile(`^(Organization|Location|Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$`)

// walk calls f for every value below v with the key that holds it.
func walk(v any, key string, f func(key string, v any)) {
	f(key, v)
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			walk(x, k, f)
		}
	case []any:
		for _, x := range v {
			walk(x, key, f)
		}
	}
}

func TestReferentialIntegrity(t *testing.T) {
	bundles := Generate(Options{Seed: 3, Patients: 60})
	shared := map[string]bool{}
	for _, e := range entries(bundles[0]) {
		r := resource(e)
		id := r["resourceType"].(string) + "/" + r["id"].(string)
		req := e["request"].(map[string]any)
		if req["method"] != "PUT" || req["url"] != id || !literalRef.MatchString(id) || shared[id] {
			t.Errorf("shared entry %s: bad request %v or duplicate id", id, req)
		}
		shared[id] = true
	}
	checkRefs := func(where string, b map[string]any, local map[string]bool) {
		walk(b, "", func(key string, v any) {
			s, ok := v.(string)
			if !ok || key != "reference" {
				return
			}
			if strings.HasPrefix(s, "urn:uuid:") && local[s] || shared[s] {
				return
			}
			t.Errorf("%s: unresolved reference %q", where, s)
		})
	}
	checkRefs("shared bundle", bundles[0], nil)
	allURNs := map[string]bool{}
	for i, b := range bundles[1:] {
		if b["resourceType"] != "Bundle" || b["type"] != "transaction" {
			t.Fatalf("bundle %d is not a transaction", i)
		}
		local := map[string]bool{}
		for _, e := range entries(b) {
			full, _ := e["fullUrl"].(string)
			r := resource(e)
			req := e["request"].(map[string]any)
			if !strings.HasPrefix(full, "urn:uuid:") || local[full] || allURNs[full] {
				t.Errorf("patient %d: bad or duplicate fullUrl %q", i, full)
			}
			if req["method"] != "POST" || req["url"] != r["resourceType"] || r["id"] != nil {
				t.Errorf("patient %d: bad POST entry %v", i, req)
			}
			local[full], allURNs[full] = true, true
		}
		checkRefs("patient bundle", b, local)
	}
}

func TestIdentifiersUnique(t *testing.T) {
	mrns, ssns := map[string]bool{}, map[string]bool{}
	ssnFormat := regexp.MustCompile(`^999-\d{2}-\d{4}$`)
	for b := range Bundles(Options{Seed: 11, Patients: 1500}) {
		for _, e := range entries(b) {
			r := resource(e)
			if r["resourceType"] != "Patient" {
				continue
			}
			for _, id := range list(r["identifier"]) {
				v := id["value"].(string)
				switch id["system"] {
				case MRNSystem:
					if mrns[v] {
						t.Fatalf("MRN %s used twice", v)
					}
					mrns[v] = true
				case SSNSystem:
					if ssns[v] || !ssnFormat.MatchString(v) {
						t.Fatalf("SSN %s used twice or malformed", v)
					}
					ssns[v] = true
				}
			}
		}
	}
	if len(mrns) != 1500 {
		t.Fatalf("got %d MRNs, want 1500", len(mrns))
	}
}

var dateLike = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$`)

// TestTimeline checks that nothing happens after the reference date or before birth, that
// periods are ordered and that the dead do not visit.
func TestTimeline(t *testing.T) {
	ref := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	for i, b := range Generate(Options{Seed: 5, Patients: 80, Reference: ref})[1:] {
		var birth, death string
		for _, e := range entries(b) {
			r := resource(e)
			if r["resourceType"] == "Patient" {
				birth = r["birthDate"].(string)
				death, _ = r["deceasedDateTime"].(string)
			}
		}
		walk(b, "", func(key string, v any) {
			s, ok := v.(string)
			if !ok || !dateLike.MatchString(s) {
				return
			}
			if s > ref.Format(time.RFC3339) || s < birth || death != "" && s > death && key != "end" {
				t.Errorf("patient %d: %s=%s outside [%s, %s/%s]", i, key, s, birth, death, ref.Format(time.DateOnly))
			}
		})
		for _, e := range entries(b) {
			r := resource(e)
			if p, ok := r["period"].(map[string]any); ok && p["end"] != nil && p["end"].(string) < p["start"].(string) {
				t.Errorf("patient %d: %s period ends before it starts", i, r["resourceType"])
			}
			if a, ok := r["abatementDateTime"].(string); ok && a < r["onsetDateTime"].(string) {
				t.Errorf("patient %d: condition abates before onset", i)
			}
		}
	}
}

// TestClinicalContent checks FHIR shapes a validator would check and the code systems used.
func TestClinicalContent(t *testing.T) {
	systems := []string{snomed, loinc, rxnorm, ucum, bcp47, actCode, roleCode, obsCategory, obsInterpretation, condClinical,
		condVerification, condCategory, confidentiality, maritalStatus, identifierType, participationType, dischargeDisp,
		orgType, practRole, degreeLicense}
	vip, deceased := 0, 0
	for _, b := range Generate(Options{Seed: 9, Patients: 100}) {
		walk(b, "", func(key string, v any) {
			m, ok := v.(map[string]any)
			if !ok || key != "coding" {
				return
			}
			if !slices.Contains(systems, m["system"].(string)) || m["code"] == "" || m["display"] == "" {
				t.Errorf("bad coding %v", m)
			}
		})
		for _, e := range entries(b) {
			r := resource(e)
			if meta, ok := r["meta"].(map[string]any); ok && r["resourceType"] == "Patient" && meta["security"] != nil {
				vip++
			}
			if r["deceasedDateTime"] != nil {
				deceased++
			}
			switch r["resourceType"] {
			case "Observation":
				cat := list(r["category"])[0]["coding"].([]any)[0].(map[string]any)["code"]
				_, hasValue := r["valueQuantity"]
				_, hasConcept := r["valueCodeableConcept"]
				_, hasComponent := r["component"]
				if r["status"] != "final" || !slices.Contains([]string{"vital-signs", "laboratory", "social-history"}, cat.(string)) ||
					!(hasValue || hasConcept || hasComponent) {
					t.Errorf("bad observation %v", r)
				}
				if q, ok := r["valueQuantity"].(map[string]any); ok {
					if _, err := q["value"].(json.Number).Float64(); err != nil || q["system"] != ucum {
						t.Errorf("bad quantity %v", q)
					}
				}
			case "Encounter":
				if c := r["class"].(map[string]any); c["system"] != actCode || !slices.Contains([]string{"AMB", "EMER", "IMP"}, c["code"].(string)) {
					t.Errorf("bad encounter class %v", c)
				}
			case "Condition":
				status := r["clinicalStatus"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
				if _, abated := r["abatementDateTime"]; abated != (status == "resolved") {
					t.Errorf("condition status %v with abatement %v (con-4)", status, r["abatementDateTime"])
				}
			case "Patient":
				for _, tc := range list(r["telecom"]) {
					if s := tc["value"].(string); tc["system"] == "email" && !regexp.MustCompile(`^[a-z0-9.]+@example\.(com|org|net)$`).MatchString(s) {
						t.Errorf("bad email %q", s)
					}
				}
			}
		}
	}
	if vip == 0 || vip > 15 || deceased == 0 || deceased > 15 {
		t.Errorf("%d VIP and %d deceased patients of 100, want a few of each", vip, deceased)
	}
}

func TestSensitive(t *testing.T) {
	b := PatientBundle(Options{Seed: 1}, 0)
	values := Sensitive(b)
	var p map[string]any
	for _, e := range entries(b) {
		if r := resource(e); r["resourceType"] == "Patient" {
			p = r
		}
	}
	want := []string{p["birthDate"].(string), list(p["name"])[0]["family"].(string), list(p["identifier"])[0]["value"].(string),
		list(p["telecom"])[0]["value"].(string), list(p["address"])[0]["line"].([]any)[0].(string)}
	for _, w := range want {
		if !slices.Contains(values, w) {
			t.Errorf("Sensitive misses %q: %v", w, values)
		}
	}
	// The same works on a bundle decoded from JSON, and every value is in the bundle's JSON.
	raw := mustJSON(t, b)
	var decoded map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if got := Sensitive(decoded); !slices.Equal(got, values) {
		t.Errorf("Sensitive(decoded) = %v, want %v", got, values)
	}
	for _, v := range values {
		if !bytes.Contains(raw, mustJSON(t, v)) {
			t.Errorf("%q not in bundle", v)
		}
	}
	if got := Sensitive(SharedBundle(Options{})); len(got) != 0 {
		t.Errorf("shared bundle has patient values %v", got)
	}
}

func TestLuhn(t *testing.T) {
	// CMS's published example NPI 1234567893.
	if got := luhnCheck("80840" + "123456789"); got != 3 {
		t.Fatalf("check digit %d, want 3", got)
	}
}

func BenchmarkPatientBundle(b *testing.B) {
	opt := Options{Seed: 1, Patients: 1 << 20}
	ro := newRoster(opt.normalized())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		patientBundle(opt.normalized(), ro, i)
		i++
	}
}

func BenchmarkGenerateJSON(b *testing.B) {
	opt := Options{Seed: 1, Patients: 100}
	for b.Loop() {
		n := 0
		for bundle := range Bundles(opt) {
			raw, err := json.Marshal(bundle)
			if err != nil {
				b.Fatal(err)
			}
			n += len(raw)
		}
		b.ReportMetric(float64(n), "json-bytes/op")
	}
}

var update = flag.Bool("update", false, "rewrite testdata/golden.sha256")

// TestGolden pins the output across processes, machines and Go releases: a change to the
// generator (or to math/rand/v2's streams) shows up here and must be deliberate (-update).
func TestGolden(t *testing.T) {
	sum := sha256.Sum256(mustJSON(t, Generate(Options{Seed: 1, Patients: 10})))
	got := hex.EncodeToString(sum[:]) + "\n"
	const path = "testdata/golden.sha256"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("population changed: sha256 %s, golden %s (run with -update if intended)", got, want)
	}
}
