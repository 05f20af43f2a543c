package care_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/policy/care"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/search"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// now is the clock of every test: relationships are judged at this time.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// stack is records and the search engine over a temporary SQLite store.
type stack struct {
	t   *testing.T
	rec *records.Store
	eng *search.Engine
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keyPath := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(keyPath, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Open(ctx, kek, db, 1000)
	if err != nil {
		t.Fatal(err)
	}
	eng := search.New(b)
	rec := records.New(db, b, eng, "test")
	eng.SetRecords(rec)
	return &stack{t: t, rec: rec, eng: eng}
}

// load stores R4 resources given as JSON.
func (s *stack) load(docs ...string) {
	s.t.Helper()
	var ops []records.Op
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			s.t.Fatalf("bad fixture %s: %v", d, err)
		}
		ops = append(ops, records.Op{Type: m["resourceType"].(string), ID: m["id"].(string), Resource: m})
	}
	if _, err := s.rec.Commit(context.Background(), ops, nil); err != nil {
		s.t.Fatal(err)
	}
}

func patient(id string, extra string) string {
	return `{"resourceType":"Patient","id":"` + id + `","active":true` + extra + `}`
}

func careTeam(id, status, subject, member string, extra string) string {
	return `{"resourceType":"CareTeam","id":"` + id + `","status":"` + status + `","subject":{"reference":"Patient/` + subject +
		`"},"participant":[{"member":{"reference":"` + member + `"}}]` + extra + `}`
}

func encounter(id, status, subject, individual, period string) string {
	return `{"resourceType":"Encounter","id":"` + id + `","status":"` + status +
		`","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/` + subject +
		`"},"participant":[{"individual":{"reference":"` + individual + `"}}]` + period + `}`
}

func appointment(id, status, pat, actor, start, end string) string {
	return `{"resourceType":"Appointment","id":"` + id + `","status":"` + status + `","start":"` + start + `","end":"` + end +
		`","participant":[{"actor":{"reference":"Patient/` + pat + `"},"status":"accepted"},{"actor":{"reference":"` + actor + `"},"status":"accepted"}]}`
}

func fixtures(s *stack) {
	var ps []string
	for _, id := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11", "p13", "p14"} {
		ps = append(ps, patient(id, ""))
	}
	ps = append(ps,
		patient("p12", `,"generalPractitioner":[{"reference":"Practitioner/dr5"}]`),
		patient("p15", `,"managingOrganization":{"reference":"Organization/org1"}`),
		patient("p16", `,"generalPractitioner":[{"reference":"PractitionerRole/role-dr2"}]`),
	)
	s.load(ps...)
	s.load(
		`{"resourceType":"Organization","id":"org1","name":"Clinic"}`,
		`{"resourceType":"PractitionerRole","id":"role-dr2","active":true,"practitioner":{"reference":"Practitioner/dr2"}}`,
		`{"resourceType":"PractitionerRole","id":"role-dr6","active":true,"practitioner":{"reference":"Practitioner/dr6"},"organization":{"reference":"Organization/org1"}}`,
		`{"resourceType":"PractitionerRole","id":"role-dr7","active":false,"practitioner":{"reference":"Practitioner/dr7"},"organization":{"reference":"Organization/org1"}}`,
		`{"resourceType":"PractitionerRole","id":"role-dr8","active":true,"practitioner":{"reference":"Practitioner/dr8"},"organization":{"reference":"Organization/org1"},"period":{"end":"2025-01-31"}}`,
		careTeam("ct1", "active", "p1", "Practitioner/dr1", ""),
		careTeam("ct2", "active", "p2", "PractitionerRole/role-dr2", ""),
		careTeam("ct3", "active", "p3", "Practitioner/dr1", `,"category":[{"coding":[{"system":"urn:phivault:care","code":"assignment"}]}]`),
		careTeam("ct4", "inactive", "p4", "Practitioner/dr1", ""),
		careTeam("ct5", "active", "p14", "Practitioner/dr1", `,"period":{"start":"2024-01-01","end":"2024-12-31"}`),
		encounter("e1", "finished", "p5", "Practitioner/dr3", `,"period":{"start":"2025-05-10T09:00:00Z","end":"2025-05-12T10:00:00Z"}`),
		encounter("e2", "finished", "p6", "Practitioner/dr3", `,"period":{"start":"2025-03-01T09:00:00Z","end":"2025-03-02T10:00:00Z"}`),
		encounter("e3", "in-progress", "p7", "Practitioner/dr3", `,"period":{"start":"2024-01-01T00:00:00Z"}`),
		encounter("e4", "cancelled", "p8", "Practitioner/dr3", `,"period":{"start":"2025-05-30T09:00:00Z","end":"2025-05-30T10:00:00Z"}`),
		encounter("e5", "planned", "p13", "PractitionerRole/role-dr2", `,"period":{"start":"2025-06-20T09:00:00Z"}`),
		encounter("e6", "planned", "p11", "Practitioner/dr3", `,"period":{"start":"2025-08-20T09:00:00Z"}`),
		appointment("a1", "booked", "p9", "Practitioner/dr4", "2025-06-15T09:00:00Z", "2025-06-15T09:30:00Z"),
		appointment("a2", "cancelled", "p10", "Practitioner/dr4", "2025-06-02T09:00:00Z", "2025-06-02T09:30:00Z"),
		appointment("a3", "fulfilled", "p11", "Practitioner/dr4", "2025-01-02T09:00:00Z", "2025-01-02T09:30:00Z"),
		appointment("a4", "fulfilled", "p10", "Practitioner/dr4", "2025-05-05T09:00:00Z", "2025-05-05T09:30:00Z"),
	)
}

func TestRelationships(t *testing.T) {
	s := newStack(t)
	fixtures(s)
	f := care.New(s.rec, s.eng, care.Options{Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name, dr, pat string
		want          []string
	}{
		{"care team member", "dr1", "p1", []string{"careteam"}},
		{"care team member through a PractitionerRole", "dr2", "p2", []string{"careteam"}},
		{"explicit assignment is a CareTeam of category assignment", "dr1", "p3", []string{"assignment"}},
		{"inactive care team", "dr1", "p4", nil},
		{"care team whose period ended", "dr1", "p14", nil},
		{"other practitioner's patient", "dr1", "p2", nil},
		{"encounter ended 20 days ago", "dr3", "p5", []string{"encounter"}},
		{"encounter ended 90 days ago", "dr3", "p6", nil},
		{"ongoing encounter started long ago", "dr3", "p7", []string{"encounter"}},
		{"cancelled encounter", "dr3", "p8", nil},
		{"planned encounter in 19 days, through a role", "dr2", "p13", []string{"encounter"}},
		{"planned encounter in 80 days", "dr3", "p11", nil},
		{"appointment in 14 days", "dr4", "p9", []string{"appointment"}},
		{"cancelled appointment, plus one 27 days ago", "dr4", "p10", []string{"appointment"}},
		{"appointment 5 months ago", "dr4", "p11", nil},
		{"general practitioner", "dr5", "p12", []string{"general-practitioner"}},
		{"general practitioner through a role", "dr2", "p16", []string{"general-practitioner"}},
		{"role at the managing organization", "dr6", "p15", []string{"practitioner-role"}},
		{"inactive role at the managing organization", "dr7", "p15", nil},
		{"role whose period ended", "dr8", "p15", nil},
		{"role elsewhere", "dr6", "p1", nil},
		{"unknown patient", "dr1", "nobody", nil},
		{"id that could smuggle a query", "dr1,Practitioner/dr5", "p12", nil},
		{"empty practitioner", "", "p1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.Relationships(context.Background(), tc.dr, tc.pat)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Relationships(%s, %s) (-want +got):\n%s", tc.dr, tc.pat, diff)
			}
		})
	}
	// Several kinds at once, sorted.
	s.load(patient("p20", `,"generalPractitioner":[{"reference":"Practitioner/dr1"}]`), careTeam("ct20", "active", "p20", "Practitioner/dr1", ""))
	got, err := f.Relationships(context.Background(), "dr1", "p20")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"careteam", "general-practitioner"}, got); diff != "" {
		t.Errorf("two kinds (-want +got):\n%s", diff)
	}
}

// TestRelationshipsCacheStaleness proves the staleness bound: a new care
// team reaches answers once the TTL has passed, and not before.
func TestRelationshipsCacheStaleness(t *testing.T) {
	s := newStack(t)
	s.load(patient("p1", ""))
	clock := now
	f := care.New(s.rec, s.eng, care.Options{TTL: 5 * time.Second, Now: func() time.Time { return clock }})
	ask := func() []string {
		t.Helper()
		got, err := f.Relationships(context.Background(), "dr1", "p1")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := ask(); got != nil {
		t.Fatalf("before any care team: %v", got)
	}
	s.load(careTeam("ct1", "active", "p1", "Practitioner/dr1", ""))
	clock = clock.Add(4 * time.Second)
	if got := ask(); got != nil {
		t.Errorf("within the TTL the cached answer stands, got %v", got)
	}
	clock = clock.Add(2 * time.Second)
	if diff := cmp.Diff([]string{"careteam"}, ask()); diff != "" {
		t.Errorf("after the TTL (-want +got):\n%s", diff)
	}
}

const consentHead = `{"resourceType":"Consent","id":"%s","status":"%s",
 "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"%s"}]},
 "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
 "patient":{"reference":"Patient/p1"},
 "policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]}`

func consent(id, status, scope, provision string) string {
	head := fmt.Sprintf(consentHead, id, status, scope)
	if provision != "" {
		head += `,"provision":` + provision
	}
	return head + "}"
}

func TestConsents(t *testing.T) {
	s := newStack(t)
	s.load(patient("p1", ""), patient("p2", ""))
	s.load(
		consent("c1", "active", "patient-privacy", `{"type":"permit","period":{"start":"2025-01-01","end":"2025-12-31"},
			"provision":[
			 {"type":"deny","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/dr9"}}],
			  "class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],
			  "securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],
			  "provision":[{"purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"ETREAT"}],"type":"permit"}]},
			 {"type":"deny","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HRESCH"}],
			  "code":[{"coding":[{"system":"http://snomed.info/sct","code":"310551002"}]}]}
			]}`),
		consent("c2", "inactive", "patient-privacy", `{"type":"deny"}`),
		consent("c3", "active", "research", `{"type":"permit"}`),
		consent("c4", "active", "patient-privacy", ""),
		consent("c5", "active", "patient-privacy", `{"type":"deny","actor":[{"role":{"coding":[{"code":"PRCP"}]},"reference":{"reference":"Organization/o1"}}]}`),
		`{"resourceType":"Consent","id":"c6","status":"active","scope":{"coding":[{"code":"patient-privacy"}]},"category":[{"coding":[{"code":"59284-0"}]}],"patient":{"reference":"Patient/p2"},"provision":{"type":"deny"}}`,
	)
	f := care.New(s.rec, s.eng, care.Options{Now: func() time.Time { return now }})
	got, err := f.Consents(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	year := func(s string, last bool) time.Time {
		t0, _ := time.Parse("2006-01-02", s)
		if last {
			return t0.AddDate(0, 0, 1).Add(-time.Nanosecond)
		}
		return t0
	}
	start, end := year("2025-01-01", false), year("2025-12-31", true)
	want := []policy.Consent{
		{ID: "c1", Permit: true, Start: start, End: end},
		{ID: "c1", Permit: false, Actors: []string{"Practitioner/dr9"}, Classes: []string{"Observation"}, Labels: []string{"R"}, Start: start, End: end},
		{ID: "c1", Permit: true, Actors: []string{"Practitioner/dr9"}, Classes: []string{"Observation"}, Labels: []string{"R"}, Purpose: []string{"ETREAT"}, Start: start, End: end},
		{ID: "c1", Permit: false, Labels: []string{"310551002"}, Purpose: []string{"HRESCH"}, Start: start, End: end},
		{ID: "c5", Permit: false, Actors: []string{"Organization/o1"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Consents(p1) (-want +got):\n%s", diff)
	}
	got, err = f.Consents(context.Background(), "p2")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]policy.Consent{{ID: "c6"}}, got); diff != "" {
		t.Errorf("Consents(p2) (-want +got):\n%s", diff)
	}
}
