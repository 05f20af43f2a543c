package search

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/fhir/searchparam"
)

// valueFixture holds resources that carry a value for most parameters of
// Patient, Observation, Encounter, Condition and MedicationRequest, and
// the parameters each one is written to populate (want): the test fails
// if such a parameter selects no value or the search by it misses.
func valueFixture() (res []map[string]any, want map[string][]string) {
	ucum := "http://unitsofmeasure.org"
	cc := func(sys, code, text string) map[string]any {
		return map[string]any{"text": text, "coding": []any{map[string]any{"system": sys, "code": code, "display": text}}}
	}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	ident := func(v string) []any { return []any{map[string]any{"system": "urn:test:id", "value": v}} }
	meta := map[string]any{
		"tag":      []any{map[string]any{"system": "urn:test:tag", "code": "vt1"}},
		"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}},
		"profile":  []any{"http://example.org/StructureDefinition/vprofile"},
		"source":   "http://example.org/source/v1",
	}
	res = []map[string]any{
		{"resourceType": "Patient", "id": "vp1", "meta": meta, "identifier": ident("VP-1"), "active": true,
			"name":    []any{map[string]any{"family": "Quaglieri", "given": []any{"Ottilie"}, "text": "Ottilie Quaglieri"}},
			"telecom": []any{map[string]any{"system": "phone", "value": "555-0199"}, map[string]any{"system": "email", "value": "ottilie@example.org"}},
			"gender":  "female", "birthDate": "1971-04-05", "deceasedDateTime": "2020-02-02",
			"address":              []any{map[string]any{"use": "home", "line": []any{"17 Larkspur Lane"}, "city": "Wexford", "state": "Ontario", "postalCode": "K9Z 3Q1", "country": "Canada"}},
			"generalPractitioner":  []any{ref("Practitioner/vpr1")},
			"managingOrganization": ref("Organization/vorg1"),
			"link":                 []any{map[string]any{"other": ref("Patient/vp2"), "type": "seealso"}},
			"communication":        []any{map[string]any{"language": cc("urn:ietf:bcp:47", "nl", "Dutch")}},
		},
		{"resourceType": "Observation", "id": "vo1", "meta": meta, "identifier": ident("VO-1"), "status": "final",
			"basedOn": []any{ref("ServiceRequest/vsr1")}, "partOf": []any{ref("Procedure/vproc1")},
			"category": []any{cc("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")},
			"code":     cc("http://loinc.org", "2339-0", "Glucose"), "subject": ref("Patient/vp1"), "focus": []any{ref("Group/vg1")},
			"encounter": ref("Encounter/ve1"), "effectiveDateTime": "2021-03-04T05:06:07Z", "issued": "2021-03-04T06:00:00Z",
			"performer":     []any{ref("Practitioner/vpr1")},
			"valueQuantity": map[string]any{"value": 5.4, "unit": "mmol/L", "system": ucum, "code": "mmol/L"},
			"method":        cc("http://snomed.info/sct", "120220003", "Injection"),
			"specimen":      ref("Specimen/vsp1"), "device": ref("Device/vd1"),
			"hasMember": []any{ref("Observation/vo2")}, "derivedFrom": []any{ref("DocumentReference/vdr1")},
			"component": []any{
				map[string]any{"code": cc("http://loinc.org", "8480-6", "Systolic"), "valueQuantity": map[string]any{"value": 121, "unit": "mm[Hg]", "system": ucum, "code": "mm[Hg]"}},
				map[string]any{"code": cc("http://loinc.org", "8462-4", "Diastolic"), "dataAbsentReason": cc("http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown", "Unknown")},
			},
		},
		{"resourceType": "Observation", "id": "vo2", "status": "final", "code": cc("http://loinc.org", "72166-2", "Tobacco"),
			"subject": ref("Patient/vp1"), "effectivePeriod": map[string]any{"start": "2019-05-01", "end": "2019-06-30"},
			"valueCodeableConcept": cc("http://snomed.info/sct", "8517006", "Ex-smoker"),
			"component":            []any{map[string]any{"code": cc("http://loinc.org", "11367-0", "History"), "valueCodeableConcept": cc("http://snomed.info/sct", "266919005", "Never")}},
		},
		{"resourceType": "Observation", "id": "vo3", "status": "final", "code": cc("http://loinc.org", "8251-1", "Service comment"),
			"subject": ref("Patient/vp1"), "valueString": "Hemolysed sample"},
		{"resourceType": "Observation", "id": "vo4", "status": "final", "code": cc("http://loinc.org", "21112-8", "Birth date"),
			"subject": ref("Patient/vp1"), "valueDateTime": "1971-04-05"},
		{"resourceType": "Observation", "id": "vo5", "status": "final", "code": cc("http://loinc.org", "8310-5", "Temperature"),
			"subject": ref("Patient/vp1"), "dataAbsentReason": cc("http://terminology.hl7.org/CodeSystem/data-absent-reason", "asked-unknown", "Asked")},
		{"resourceType": "Encounter", "id": "ve1", "meta": meta, "identifier": ident("VE-1"), "status": "finished",
			"class":       map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
			"type":        []any{cc("http://snomed.info/sct", "183452005", "Emergency admission")},
			"serviceType": cc("http://terminology.hl7.org/CodeSystem/service-type", "124", "General practice"),
			"subject":     ref("Patient/vp1"), "episodeOfCare": []any{ref("EpisodeOfCare/veoc1")}, "basedOn": []any{ref("ServiceRequest/vsr1")},
			"participant":     []any{map[string]any{"type": []any{cc("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ATND", "attender")}, "individual": ref("Practitioner/vpr1")}},
			"appointment":     []any{ref("Appointment/vap1")},
			"period":          map[string]any{"start": "2021-03-04T01:00:00Z", "end": "2021-03-06T12:00:00Z"},
			"length":          map[string]any{"value": 90, "unit": "min", "system": ucum, "code": "min"},
			"reasonCode":      []any{cc("http://snomed.info/sct", "21522001", "Abdominal pain")},
			"reasonReference": []any{ref("Condition/vc1")},
			"diagnosis":       []any{map[string]any{"condition": ref("Condition/vc1")}},
			"account":         []any{ref("Account/vacc1")},
			"hospitalization": map[string]any{"specialArrangement": []any{cc("http://terminology.hl7.org/CodeSystem/encounter-special-arrangements", "wheel", "Wheelchair")}},
			"location":        []any{map[string]any{"location": ref("Location/vloc1"), "period": map[string]any{"start": "2021-03-04T02:00:00Z"}}},
			"serviceProvider": ref("Organization/vorg1"), "partOf": ref("Encounter/ve0"),
		},
		{"resourceType": "Condition", "id": "vc1", "meta": meta, "identifier": ident("VC-1"),
			"clinicalStatus":     cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
			"verificationStatus": cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
			"category":           []any{cc("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem")},
			"severity":           cc("http://snomed.info/sct", "24484000", "Severe"),
			"code":               cc("http://snomed.info/sct", "44054006", "Diabetes"),
			"bodySite":           []any{cc("http://snomed.info/sct", "113331007", "Endocrine system")},
			"subject":            ref("Patient/vp1"), "encounter": ref("Encounter/ve1"),
			"onsetDateTime": "2019-01-01", "abatementDateTime": "2020-01-01", "recordedDate": "2019-01-02",
			"recorder": ref("Practitioner/vpr1"), "asserter": ref("Practitioner/vpr2"),
			"stage":    []any{map[string]any{"summary": cc("http://snomed.info/sct", "786005", "Stage 1")}},
			"evidence": []any{map[string]any{"code": []any{cc("http://snomed.info/sct", "271737000", "Anemia")}, "detail": []any{ref("Observation/vo1")}}},
		},
		{"resourceType": "Condition", "id": "vc2", "subject": ref("Patient/vp1"), "code": cc("http://snomed.info/sct", "38341003", "Hypertension"),
			"onsetAge": map[string]any{"value": 52, "unit": "a", "system": ucum, "code": "a"}, "abatementString": "in remission"},
		{"resourceType": "MedicationRequest", "id": "vmr1", "meta": meta, "identifier": ident("VMR-1"), "status": "active", "intent": "order",
			"category":                  []any{cc("http://terminology.hl7.org/CodeSystem/medicationrequest-category", "outpatient", "Outpatient")},
			"priority":                  "urgent",
			"medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm", "1049502", "Oxycodone"),
			"subject":                   ref("Patient/vp1"), "encounter": ref("Encounter/ve1"), "authoredOn": "2022-05-06",
			"requester": ref("Practitioner/vpr1"), "performer": ref("Practitioner/vpr2"),
			"performerType":     cc("http://snomed.info/sct", "309343006", "Physician"),
			"dosageInstruction": []any{map[string]any{"timing": map[string]any{"event": []any{"2022-05-07T08:00:00Z"}}}},
			"dispenseRequest":   map[string]any{"performer": ref("Organization/vorg1")},
		},
		{"resourceType": "MedicationRequest", "id": "vmr2", "status": "stopped", "intent": "plan",
			"medicationReference": ref("Medication/vmed1"), "subject": ref("Patient/vp1")},
	}
	want = map[string][]string{
		"Patient/vp1": {"_id", "_lastUpdated", "_tag", "_security", "_profile", "_source", "identifier", "active", "name", "family", "given",
			"phonetic", "telecom", "phone", "email", "gender", "birthdate", "death-date", "deceased", "address", "address-city", "address-state",
			"address-postalcode", "address-country", "address-use", "general-practitioner", "organization", "link", "language"},
		"Observation/vo1": {"identifier", "status", "based-on", "part-of", "category", "code", "subject", "patient", "focus", "encounter",
			"date", "performer", "value-quantity", "method", "specimen", "device", "has-member", "derived-from", "component-code",
			"component-value-quantity", "component-code-value-quantity", "combo-code", "combo-value-quantity", "code-value-quantity",
			"combo-code-value-quantity", "component-data-absent-reason", "combo-data-absent-reason", "_tag"},
		"Observation/vo2": {"value-concept", "code-value-concept", "component-value-concept", "component-code-value-concept",
			"combo-value-concept", "combo-code-value-concept", "date"},
		"Observation/vo3": {"value-string", "code-value-string"},
		"Observation/vo4": {"value-date", "code-value-date"},
		"Observation/vo5": {"data-absent-reason"},
		"Encounter/ve1": {"identifier", "status", "class", "type", "service-provider", "subject", "patient", "episode-of-care", "based-on",
			"participant", "participant-type", "practitioner", "appointment", "date", "length", "reason-code", "reason-reference",
			"diagnosis", "account", "special-arrangement", "location", "location-period", "part-of"},
		"Condition/vc1": {"identifier", "clinical-status", "verification-status", "category", "severity", "code", "body-site", "subject",
			"patient", "encounter", "onset-date", "abatement-date", "recorded-date", "asserter", "stage", "evidence", "evidence-detail"},
		"Condition/vc2": {"onset-age", "abatement-string"},
		"MedicationRequest/vmr1": {"identifier", "status", "intent", "category", "priority", "code", "subject", "patient", "encounter",
			"authoredon", "requester", "intended-performer", "intended-performertype", "date", "intended-dispenser"},
		"MedicationRequest/vmr2": {"medication", "status", "intent"},
	}
	return res, want
}

// escapeValue escapes the characters that separate search values.
func escapeValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`, "$", `\$`, "|", `\|`).Replace(s)
}

// valueQuery is a search value that must select a resource holding v,
// written by the R4 rules for the parameter's type; "" when v cannot be
// searched for (a local reference, an open-ended date).
func valueQuery(v searchparam.Value) string {
	switch v.Type {
	case searchparam.Token:
		switch {
		case v.System != "" && v.Code != "":
			return escapeValue(v.System) + "|" + escapeValue(v.Code)
		case v.Code != "":
			return escapeValue(v.Code)
		}
	case searchparam.String:
		return escapeValue(string([]rune(v.Text)[:min(3, len([]rune(v.Text)))]))
	case searchparam.URI:
		return escapeValue(v.Text)
	case searchparam.Reference:
		if k := v.Ref.Key(); k != "" {
			return k
		}
		return escapeValue(v.Ref.Raw)
	case searchparam.Number:
		return v.Number
	case searchparam.Quantity:
		if v.Code != "" {
			return v.Number + "|" + escapeValue(v.System) + "|" + escapeValue(v.Code)
		}
		return v.Number
	case searchparam.Date:
		switch {
		case v.Low.Year() > 1:
			return "ge" + v.Low.Truncate(time.Second).Format(time.RFC3339)
		case v.High.Year() < 9999:
			return "le" + v.High.Truncate(time.Second).Format(time.RFC3339)
		}
		return "" // unbounded both ways
	case searchparam.Composite:
		var parts []string
		for _, c := range v.Components {
			q := valueQuery(c)
			if q == "" {
				return ""
			}
			parts = append(parts, q)
		}
		return strings.Join(parts, "$")
	}
	return ""
}

// literal is what of v must appear in the resource's JSON: the check that
// the value comes from the resource and not from the parameter machinery.
func literal(v searchparam.Value) string {
	switch v.Type {
	case searchparam.Token:
		return v.Code
	case searchparam.String, searchparam.URI:
		return v.Text
	case searchparam.Reference:
		return v.Ref.Raw
	case searchparam.Number, searchparam.Quantity:
		return v.Number
	case searchparam.Date:
		return fmt.Sprint(v.Low.Year())
	}
	return ""
}

// TestMetadataValuesAreFound: for every parameter that selects a value in
// the value fixture (and at least the ones each resource was written for),
// a search by that value finds the resource: the value, and for dates the
// whole range from its start, AND-ed with the value's end (le); and
// name:missing=false finds it while name:missing=true does not.
func TestMetadataValuesAreFound(t *testing.T) {
	e := newEnv(t)
	res, want := valueFixture()
	e.load(fixture()[:60]...)
	e.load(res...)
	reg := searchparam.R4()
	checked := 0
	for _, r := range res {
		key := fmt.Sprint(r["resourceType"], "/", r["id"])
		typ := r["resourceType"].(string)
		st, stored := e.do("GET", "/fhir/"+key, "")
		if st != 200 {
			t.Fatalf("GET %s: %d", key, st)
		}
		raw, _ := json.Marshal(stored)
		parsed, err := parseJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := reg.Extract(parsed)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		byParam := map[string][]searchparam.Value{}
		for _, v := range vals {
			byParam[v.Param] = append(byParam[v.Param], v)
		}
		byParam["_id"] = append(byParam["_id"], searchparam.Value{Param: "_id", Type: searchparam.Token, Code: r["id"].(string)})
		for _, p := range want[key] {
			if len(byParam[p]) == 0 {
				t.Errorf("%s: written to carry %s, but the parameter selects no value", key, p)
			}
		}
		for p, vs := range byParam {
			found := false
			for _, v := range vs {
				if l := literal(v); l != "" && !strings.Contains(string(raw), l) && v.Type != searchparam.Composite {
					t.Errorf("%s.%s: value %q is not in the resource", key, p, l)
				}
				q := valueQuery(v)
				if q == "" {
					continue
				}
				query := url.Values{p: {q}}
				if v.Type == searchparam.Date && v.Low.Year() > 1 && v.High.Year() < 9999 {
					query.Add(p, "le"+v.High.Truncate(time.Second).Format(time.RFC3339))
				}
				b := e.get(typ + "?" + query.Encode() + "&_count=1000")
				checked++
				if b.status != 200 {
					t.Errorf("%s?%s: %d %v", typ, query.Encode(), b.status, b.raw)
					continue
				}
				if slices.Contains(b.matches, key) {
					found = true
					continue
				}
				t.Errorf("%s?%s does not find %s (%d matches)", typ, query.Encode(), key, len(b.matches))
			}
			if !found && slices.Contains(want[key], p) {
				t.Errorf("%s: no search by %s finds it", key, p)
			}
			// The resource has a value for p: :missing=false finds it,
			// :missing=true does not.
			for _, missing := range []string{"false", "true"} {
				q := url.Values{p + ":missing": {missing}}.Encode() + "&_count=1000"
				b := e.get(typ + "?" + q)
				checked++
				if b.status != 200 || slices.Contains(b.matches, key) != (missing == "false") {
					t.Errorf("%s?%s: %d, %s among %d matches: %t", typ, q, b.status, key, len(b.matches), slices.Contains(b.matches, key))
				}
			}
		}
	}
	if checked < 150 {
		t.Errorf("only %d value searches", checked)
	}
	t.Logf("%d value searches over %d resources", checked, len(res))
}
