package fhirapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// restrictedOrP3 denies reading anything labelled R (restricted) and
// anything of patient p3; it allows the rest.
type restrictedOrP3 struct{}

func (restrictedOrP3) Decide(_ context.Context, r policy.Request) policy.Decision {
	if r.Patient == "p3" || slices.Contains(r.Labels, "R") {
		return policy.Decision{Policies: []string{"test-everything"}, Reason: "restricted"}
	}
	return policy.Decision{Allow: true, Policies: []string{"test-everything"}}
}

// auditSwitch is a backend whose audit appends fail while down is set.
type auditSwitch struct {
	store.Backend
	down atomic.Bool
}

func (s *auditSwitch) Update(ctx context.Context, fn func(store.Writer) error) error {
	return s.Backend.Update(ctx, func(w store.Writer) error { return fn(auditSwitchWriter{w, s}) })
}

type auditSwitchWriter struct {
	store.Writer
	s *auditSwitch
}

func (w auditSwitchWriter) AppendAudit(leaf []byte) (int64, error) {
	if w.s.down.Load() {
		return 0, errors.New("injected audit failure")
	}
	return w.Writer.AppendAudit(leaf)
}

// newEverythingEnv is the real API over SQLite, records and the search
// engine, deciding with restrictedOrP3, loaded with three patients' data.
func newEverythingEnv(t *testing.T) (*authzEnv, *auditSwitch) {
	t.Helper()
	db, rec, eng := newStack(t)
	sw := &auditSwitch{Backend: db}
	api := fhirapi.New(fhirapi.Config{Records: rec, Search: eng, Policy: restrictedOrP3{},
		Audit: audit.NewLog(sw, 5*time.Second), Base: base, Version: "test"})
	env := &authzEnv{t: t, rec: rec, eng: eng, api: api}
	env.load(
		`{"resourceType":"Patient","id":"p1","name":[{"family":"Alpha"}]}`,
		`{"resourceType":"Patient","id":"p2","name":[{"family":"Beta"}]}`,
		`{"resourceType":"Patient","id":"p3","name":[{"family":"Gamma"}]}`,
		obs("o1", "p1", "1111-1", `,"performer":[{"reference":"Practitioner/dr1"},{"reference":"Practitioner/gone"}]`),
		obs("o2", "p2", "9999-9", ""),
		obs("o4", "p1", "2222-2", `,"performer":[{"reference":"Patient/p2"}]`),
		obs("o5", "p2", "9999-9", `,"performer":[{"reference":"Patient/p1"}]`),
		obs("o6", "p1", "3333-3", ""),
		obs("o7", "p3", "3333-3", ""),
		`{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"code":{"text":"asthma"}}`,
		`{"resourceType":"Condition","id":"c2","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},"subject":{"reference":"Patient/p1"},"code":{"text":"hidden"}}`,
		`{"resourceType":"Condition","id":"c3","subject":{"reference":"Patient/p2"},"code":{"text":"other"}}`,
		`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},"serviceProvider":{"reference":"Organization/orgR"}}`,
		`{"resourceType":"Practitioner","id":"dr1","name":[{"family":"Doc"}]}`,
		`{"resourceType":"Practitioner","id":"dr2","name":[{"family":"Other"}]}`,
		`{"resourceType":"Organization","id":"orgR","meta":{"security":[{"code":"R"}]},"name":"Restricted clinic"}`,
	)
	return env, sw
}

// lastEvent decodes the newest audit leaf: subtype, outcome, patients and
// entities (sorted).
func lastEvent(t *testing.T, env *authzEnv) (interaction, outcome string, patients, entities []string) {
	t.Helper()
	var leaf []byte
	err := env.rec.Backend().View(context.Background(), func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil || n == 0 {
			return err
		}
		ls, err := r.AuditLeaves(n-1, n)
		if len(ls) == 1 {
			leaf = ls[0]
		}
		return err
	})
	if err != nil || leaf == nil {
		t.Fatalf("no audit leaf: %v", err)
	}
	var ae struct {
		Subtype []struct{ Code string }
		Outcome string
		Entity  []struct {
			What struct{ Reference string }
			Type struct{ Code string }
			Role struct{ Code string }
		}
	}
	if err := json.Unmarshal(leaf, &ae); err != nil || len(ae.Subtype) != 1 {
		t.Fatalf("bad leaf %s: %v", leaf, err)
	}
	for _, e := range ae.Entity {
		switch {
		case e.Type.Code == "1" && e.Role.Code == "1":
			patients = append(patients, e.What.Reference)
		case e.Role.Code == "24":
		default:
			entities = append(entities, e.What.Reference)
		}
	}
	slices.Sort(patients)
	slices.Sort(entities)
	return ae.Subtype[0].Code, ae.Outcome, patients, entities
}

func auditSizeOf(t *testing.T, env *authzEnv) int64 {
	t.Helper()
	var n int64
	if err := env.rec.Backend().View(context.Background(), func(r store.Reader) (err error) { n, err = r.AuditSize(); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

var p1All = []string{"Patient/p1", "Condition/c1", "Encounter/e1", "Observation/o1", "Observation/o4", "Observation/o6"}

func TestEverythingCompleteAndAudited(t *testing.T) {
	env, _ := newEverythingEnv(t)
	before := auditSizeOf(t, env)
	a := env.call(u1, "GET", "/fhir/Patient/p1/$everything", "")
	if a.status != 200 {
		t.Fatalf("status %d: %v", a.status, a.body)
	}
	// Condition/c2 is restricted (hidden and not counted); o5 names p1 only
	// as performer and is p2's; c3, o2 are p2's.
	if diff := cmp.Diff(p1All, a.matches); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if a.total != float64(len(p1All)) {
		t.Errorf("total = %v, want %d", a.total, len(p1All))
	}
	// The practitioner o1 names is included (not counted); the restricted
	// organization e1 names and the missing practitioner are not.
	if diff := cmp.Diff([]string{"Practitioner/dr1"}, a.includes); diff != "" {
		t.Errorf("includes (-want +got):\n%s", diff)
	}
	if got := auditSizeOf(t, env) - before; got != 1 {
		t.Errorf("%d audit events, want 1", got)
	}
	in, out, pats, ents := lastEvent(t, env)
	var want []string
	for _, m := range append(slices.Clone(p1All), "Practitioner/dr1") {
		want = append(want, m+"/_history/1")
	}
	slices.Sort(want)
	if diff := cmp.Diff([]any{"everything", "0", []string{"Patient/p1"}, want}, []any{in, out, pats, ents}); diff != "" {
		t.Errorf("audit event (-want +got):\n%s", diff)
	}

	// POST with a form body: the same parameters, the same answer.
	p := env.call(u1, "POST", "/fhir/Patient/p1/$everything", "_type=Condition", "Content-Type", "application/x-www-form-urlencoded")
	if diff := cmp.Diff([]string{"Condition/c1"}, p.matches); p.status != 200 || diff != "" {
		t.Errorf("POST: status %d, entries (-want +got):\n%s", p.status, diff)
	}
}

func TestEverythingTypeAndSince(t *testing.T) {
	env, _ := newEverythingEnv(t)
	time.Sleep(5 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	env.load(obs("o6", "p1", "4444-4", ""), `{"resourceType":"Encounter","id":"e2","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`)
	tests := []struct {
		query string
		want  []string
	}{
		{"_type=Observation", []string{"Observation/o1", "Observation/o4", "Observation/o6"}},
		{"_type=Patient,Encounter", []string{"Patient/p1", "Encounter/e1", "Encounter/e2"}},
		{"_type=Condition&_count=10", []string{"Condition/c1"}},
		{"_since=" + since.Format(time.RFC3339Nano), []string{"Encounter/e2", "Observation/o6"}},
		{"_since=" + since.Format(time.RFC3339Nano) + "&_type=Encounter", []string{"Encounter/e2"}},
		{"_since=2999-01-01T00:00:00Z", nil},
	}
	for _, tt := range tests {
		a := env.call(u1, "GET", "/fhir/Patient/p1/$everything?"+strings.ReplaceAll(tt.query, "+", "%2B"), "")
		if a.status != 200 {
			t.Errorf("%s: status %d: %v", tt.query, a.status, a.body)
			continue
		}
		if diff := cmp.Diff(tt.want, a.matches); diff != "" {
			t.Errorf("%s: entries (-want +got):\n%s", tt.query, diff)
		}
		if a.total != float64(len(tt.want)) {
			t.Errorf("%s: total %v, want %d", tt.query, a.total, len(tt.want))
		}
	}
}

func TestEverythingErrors(t *testing.T) {
	env, _ := newEverythingEnv(t)
	tests := []struct {
		path   string
		status int
	}{
		{"/fhir/Patient/p3/$everything", 403},
		{"/fhir/Patient/nobody/$everything", 404},
		{"/fhir/Patient/p1/$everything?_type=Practitioner", 400},
		{"/fhir/Patient/p1/$everything?_type=Nonsense", 400},
		{"/fhir/Patient/p1/$everything?_since=2020-01-01", 400},
		{"/fhir/Patient/p1/$everything?_count=-1", 400},
		{"/fhir/Patient/p1/$everything?_count=2&_count=3", 400},
		{"/fhir/Patient/p1/$everything?start=2020-01-01", 400},
		{"/fhir/Patient/p1/$everything?color=blue", 400},
		{"/fhir/Patient/p1/$everything?_cursor=garbage", 400},
		{"/fhir/Patient/p1/$everything?_cursor=UGF0aWVudC9wMQ.00", 400},
	}
	for _, tt := range tests {
		before := auditSizeOf(t, env)
		a := env.call(u1, "GET", tt.path, "")
		if a.status != tt.status || a.body["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: status %d (%v), want %d OperationOutcome", tt.path, a.status, a.body["resourceType"], tt.status)
		}
		if auditSizeOf(t, env) != before+1 {
			t.Errorf("%s: not audited", tt.path)
			continue
		}
		_, out, pats, ents := lastEvent(t, env)
		if out == "0" || len(ents) != 0 {
			t.Errorf("%s: audit outcome %s entities %v, want a failure naming nothing returned", tt.path, out, ents)
		}
		if tt.status == 403 && !cmp.Equal(pats, []string{"Patient/p3"}) {
			t.Errorf("%s: denial names patients %v, want p3", tt.path, pats)
		}
	}
}

func TestEverythingPaging(t *testing.T) {
	env, _ := newEverythingEnv(t)
	var got []string
	path := "/fhir/Patient/p1/$everything?_count=2"
	var second string
	for i := 0; path != ""; i++ {
		if i > 5 {
			t.Fatal("paging does not end")
		}
		a := env.call(u1, "GET", path, "")
		if a.status != 200 || a.total != float64(len(p1All)) {
			t.Fatalf("%s: status %d total %v", path, a.status, a.total)
		}
		got = append(got, a.matches...)
		path = ""
		if a.next != "" {
			path = "/fhir" + a.next
			if second == "" {
				second = path
			}
		}
	}
	if diff := cmp.Diff(p1All, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	// The link is the caller's: another user, another session of the same
	// user, or an edited query are refused.
	for _, tt := range []struct {
		who  policy.Principal
		path string
	}{
		{user("u2", "s9"), second},
		{user("u1", "s2"), second},
		{u1, strings.Replace(second, "_count=2", "_count=3", 1)},
		{u1, strings.Replace(second, "Patient/p1/", "Patient/p2/", 1)},
		// Other spellings of the same link: a line break in its base64url
		// (skipped by encoding/base64) and its MAC in upper-case hex.
		{u1, respell(t, second, func(enc, mac string) string { return enc[:3] + "%0A" + enc[3:] + "." + mac })},
		{u1, respell(t, second, func(enc, mac string) string { return enc + "." + strings.ToUpper(mac) })},
	} {
		if a := env.call(tt.who, "GET", tt.path, ""); a.status != 400 {
			t.Errorf("%s %s: status %d, want 400", tt.who.UserID, tt.path, a.status)
		}
	}
	if a := env.call(u1, "GET", second, ""); a.status != 200 || len(a.matches) != 2 {
		t.Errorf("own replay: status %d, %v", a.status, a.matches)
	}
}

// respell rewrites the _cursor of path, given as its base64url position and
// hex MAC.
func respell(t *testing.T, path string, f func(enc, mac string) string) string {
	t.Helper()
	head, cursor, ok := strings.Cut(path, "_cursor=")
	cursor, tail, _ := strings.Cut(cursor, "&")
	enc, mac, ok2 := strings.Cut(cursor, ".")
	if !ok || !ok2 || strings.ToUpper(mac) == mac {
		t.Fatalf("no lower-case hex MAC in _cursor of %s", path)
	}
	if tail != "" {
		tail = "&" + tail
	}
	return head + "_cursor=" + f(enc, mac) + tail
}

func TestEverythingFailsClosed(t *testing.T) {
	env, sw := newEverythingEnv(t)
	sw.down.Store(true)
	r := env.call(u1, "GET", "/fhir/Patient/p1/$everything", "")
	if r.status != 503 {
		t.Fatalf("status %d, want 503", r.status)
	}
	b, _ := json.Marshal(r.body)
	if strings.Contains(string(b), "Alpha") || len(r.matches) != 0 {
		t.Errorf("patient data sent with the audit log down: %s", b)
	}
	sw.down.Store(false)
	if r := env.call(u1, "GET", "/fhir/Patient/p1/$everything", ""); r.status != 200 {
		t.Errorf("after recovery: status %d", r.status)
	}
}

func TestEverythingInCapabilityStatement(t *testing.T) {
	env, _ := newEverythingEnv(t)
	a := env.call(u1, "GET", "/fhir/metadata", "")
	b, _ := json.Marshal(a.body)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type      string
				Operation []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(b, &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("bad CapabilityStatement: %v", err)
	}
	for _, r := range cs.Rest[0].Resource {
		if r.Type == "Patient" {
			want := []struct{ Name, Definition string }{{"everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
				{"access-report", "urn:phivault:operation:Patient-access-report"}, {"disclosures", "urn:phivault:operation:Patient-disclosures"}}
			if diff := cmp.Diff(want, r.Operation); diff != "" {
				t.Errorf("Patient operations (-want +got):\n%s", diff)
			}
			return
		}
	}
	t.Error("no Patient resource in the CapabilityStatement")
}
