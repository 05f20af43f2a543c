package policy

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// memFacts is an in-memory Facts: the stored data a decision depends on.
type memFacts struct {
	rels     map[[2]string][]string // practitioner, patient
	consents map[string][]Consent   // patient
	relErr   error
	consErr  error
}

func (m *memFacts) Relationships(_ context.Context, practitioner, patient string) ([]string, error) {
	if m.relErr != nil {
		return nil, m.relErr
	}
	return m.rels[[2]string{practitioner, patient}], nil
}

func (m *memFacts) Consents(_ context.Context, patient string) ([]Consent, error) {
	if m.consErr != nil {
		return nil, m.consErr
	}
	return m.consents[patient], nil
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestEngine(t testing.TB, f Facts, opts ...Option) *Engine {
	t.Helper()
	e, err := NewEngine(DefaultPolicies(), f, append([]Option{WithClock(func() time.Time { return t0 })}, opts...)...)
	if err != nil {
		t.Fatalf("NewEngine(DefaultPolicies()): %v", err)
	}
	return e
}

// who returns a trained workforce user logged in with a password and TOTP.
func who(role string) Principal {
	return Principal{UserID: "u-" + role, Roles: []string{role}, Method: "password+totp", MFA: true, Trained: true, Practitioner: "pr-" + role}
}

func with(p Principal, f func(*Principal)) Principal { f(&p); return p }

func TestDefaultPoliciesAreDocumented(t *testing.T) {
	src := string(DefaultPolicies())
	lines := strings.Split(src, "\n")
	ids := regexp.MustCompile(`^@id\("([^"]+)"\)`)
	n := 0
	for i, l := range lines {
		m := ids.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		if i == 0 || !strings.HasPrefix(lines[i-1], "//") {
			t.Errorf("policy %q has no plain-words comment right above it", m[1])
		}
	}
	if got := strings.Count(src, "\npermit") + strings.Count(src, "\nforbid"); got != n || n < 10 {
		t.Errorf("%d policies, %d @id annotations: every policy needs an @id", got, n)
	}
}

func TestRules(t *testing.T) {
	facts := &memFacts{
		rels: map[[2]string][]string{
			{"pr-physician", "p1"}: {"careteam"},
			{"pr-nurse", "p1"}:     {"encounter"},
			{"pr-physician", "p4"}: {"general-practitioner"},
			{"pr-physician", "p5"}: {"careteam"},
			{"pr-physician", "p7"}: {"careteam"},
		},
		consents: map[string][]Consent{
			"p2": {{ID: "c-deny-all", Permit: false}},
			"p3": {{ID: "c-research", Permit: true, Purpose: []string{"HRESCH"}}},
			"p4": {{ID: "c-no-hiv", Labels: []string{"HIV"}},
				{ID: "c-not-dr", Actors: []string{"Practitioner/pr-physician"}, Classes: []string{"Condition"}}},
			"p5": { // deny all, permit treatment by one physician
				{ID: "c-mixed", Permit: false},
				{ID: "c-mixed", Permit: true, Actors: []string{"Practitioner/pr-physician"}, Purpose: []string{"TREAT"}}},
			"p7": { // permit all, deny conditions (a nested exception)
				{ID: "c-nested", Permit: true},
				{ID: "c-nested", Permit: false, Classes: []string{"Condition"}}},
			"p6": {{ID: "c-expired", End: t0.Add(-time.Hour)}, {ID: "c-future", Start: t0.Add(time.Hour)}},
		},
	}
	e := newTestEngine(t, facts)
	bg := &BreakGlass{Reason: "cardiac arrest", Until: t0.Add(time.Hour)}
	op := Principal{UserID: "cli", Roles: []string{"operator"}, Method: "local-cli"}
	patient := Principal{UserID: "pat", Roles: []string{"patient"}, Patient: "p1", Method: "password"}
	obs := func(a Action, pat, purpose string) Request {
		return Request{Action: a, Type: "Observation", ID: "o1", Patient: pat, Purpose: purpose}
	}
	tests := []struct {
		name  string
		p     Principal
		r     Request
		allow bool
		ids   []string
	}{
		{"physician reads patient in care", who("physician"), obs(Read, "p1", "TREAT"), true, []string{"clinical-care"}},
		{"purpose words are accepted", who("physician"), obs(Read, "p1", "treatment"), true, []string{"clinical-care"}},
		{"physician updates patient in care", who("physician"), obs(Update, "p1", "TREAT"), true, []string{"clinical-care"}},
		{"nobody clinical deletes", who("physician"), obs(Delete, "p1", "TREAT"), false, []string{"default-deny"}},
		{"physician without relationship", who("physician"), obs(Read, "p9", "TREAT"), false, []string{"default-deny"}},
		{"physician for payment", who("physician"), obs(Read, "p1", "HPAYMT"), false, []string{"default-deny"}},
		{"nurse in care", who("nurse"), obs(Create, "p1", "TREAT"), true, []string{"clinical-care"}},
		{"physician opens a search", who("physician"), obs(Search, "", "TREAT"), true, []string{"clinical-search"}},
		{"physician reads reference data", who("physician"), Request{Action: Read, Type: "Practitioner", ID: "x"}, true, []string{"reference-read"}},
		{"unknown type is patient data", who("front-desk"), Request{Action: Read, Type: "Basic", ID: "x"}, false, []string{"default-deny"}},

		{"front desk reads demographics", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p9"}, true, []string{"front-desk"}},
		{"front desk books", who("front-desk"), Request{Action: Create, Type: "Appointment", Patient: "p9"}, true, []string{"front-desk"}},
		{"front desk sees nothing clinical", who("front-desk"), obs(Read, "p9", "TREAT"), false, []string{"default-deny"}},
		{"front desk, restricted record", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p9", Labels: []string{"R"}}, false, []string{"restricted-record"}},
		{"physician in care, restricted record", who("physician"), Request{Action: Read, Type: "Condition", Patient: "p1", Purpose: "TREAT", Labels: []string{"V"}}, true, []string{"clinical-care"}},
		{"billing for payment", who("billing"), Request{Action: Read, Type: "Claim", Patient: "p9", Purpose: "HPAYMT"}, true, []string{"billing"}},
		{"billing for treatment", who("billing"), Request{Action: Read, Type: "Claim", Patient: "p9", Purpose: "TREAT"}, false, []string{"default-deny"}},
		{"billing writes", who("billing"), Request{Action: Update, Type: "Claim", Patient: "p9", Purpose: "HPAYMT"}, false, []string{"default-deny"}},

		{"research with consent", who("researcher"), obs(Read, "p3", "HRESCH"), true, []string{"research"}},
		{"research without consent", who("researcher"), obs(Read, "p1", "HRESCH"), false, []string{"default-deny"}},
		{"research, wrong purpose", who("researcher"), obs(Read, "p3", "TREAT"), false, []string{"default-deny"}},
		{"researcher writes", who("researcher"), obs(Create, "p3", "HRESCH"), false, []string{"default-deny"}},

		{"consent denies all", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p2"}, false, []string{"consent-deny", "consent:c-deny-all"}},
		{"consent does not stop writes", who("front-desk"), Request{Action: Update, Type: "Patient", ID: "p2"}, true, []string{"front-desk"}},
		{"consent by label", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p4", Labels: []string{"HIV"}}, false, []string{"consent-deny", "consent:c-no-hiv"}},
		{"consent by label, other label", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p4", Labels: []string{"PSY"}}, true, []string{"front-desk"}},
		{"consent by actor and class", who("physician"), Request{Action: Read, Type: "Condition", Patient: "p4", Purpose: "TREAT"}, false, []string{"consent-deny", "consent:c-not-dr"}},
		{"consent by actor, other class", who("physician"), Request{Action: Read, Type: "Observation", Patient: "p4", Purpose: "TREAT"}, true, []string{"clinical-care"}},
		{"consent by actor, other actor", with(who("physician"), func(p *Principal) { p.Practitioner = "pr-other" }), Request{Action: Read, Type: "Condition", Patient: "p4", Purpose: "TREAT"}, false, []string{"default-deny"}},
		{"consent period over or not begun", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p6"}, true, []string{"front-desk"}},
		{"deny all, permit one physician", who("front-desk"), Request{Action: Read, Type: "Patient", ID: "p5"}, false, []string{"consent-deny", "consent:c-mixed"}},
		{"deny all, the permitted physician", who("physician"), Request{Action: Read, Type: "Patient", ID: "p5", Purpose: "TREAT"}, true, []string{"clinical-care"}},
		{"deny all, permitted physician, other purpose", who("physician"), Request{Action: Read, Type: "Patient", ID: "p5", Purpose: "ETREAT"}, false, []string{"consent-deny", "consent:c-mixed"}},
		{"permit all, deny nested: other class", who("physician"), Request{Action: Read, Type: "Observation", Patient: "p7", Purpose: "TREAT"}, true, []string{"clinical-care"}},
		{"permit all, deny nested: the denied class", who("physician"), Request{Action: Read, Type: "Condition", Patient: "p7", Purpose: "TREAT"}, false, []string{"consent-deny", "consent:c-nested"}},
		{"patient sees own record despite own consent", with(patient, func(p *Principal) { p.Patient = "p2" }), Request{Action: Read, Type: "Patient", ID: "p2"}, true, []string{"patient-own"}},

		{"break-glass reads anyone", with(who("physician"), func(p *Principal) { p.BreakGlass = bg }), obs(Read, "p9", "ETREAT"), true, []string{"break-the-glass"}},
		{"break-glass overrides consent", with(who("nurse"), func(p *Principal) { p.BreakGlass = bg }), obs(Read, "p2", "ETREAT"), true, []string{"break-the-glass"}},
		{"break-glass and care", with(who("physician"), func(p *Principal) { p.BreakGlass = bg }), obs(Read, "p1", "TREAT"), true, []string{"break-the-glass", "clinical-care"}},
		{"break-glass never writes", with(who("physician"), func(p *Principal) { p.BreakGlass = bg }), obs(Update, "p9", "ETREAT"), false, []string{"default-deny"}},
		{"break-glass needs MFA", with(who("administrator"), func(p *Principal) { p.BreakGlass = bg; p.MFA = false; p.Method = "operator-token" }), obs(Read, "p9", "ETREAT"), false, []string{"default-deny"}},
		{"administrator break-glass", with(who("administrator"), func(p *Principal) { p.BreakGlass = bg }), obs(Read, "p9", "ETREAT"), true, []string{"break-the-glass"}},
		{"front desk has no break-glass", with(who("front-desk"), func(p *Principal) { p.BreakGlass = bg }), obs(Read, "p9", "ETREAT"), false, []string{"default-deny"}},
		{"administrator reads no patient data", who("administrator"), obs(Read, "p1", "TREAT"), false, []string{"default-deny"}},
		{"administrator administers", who("administrator"), Request{Action: Admin}, true, []string{"administration"}},
		{"untrained administrator administers", with(who("administrator"), func(p *Principal) { p.Trained = false; p.MFA = false }), Request{Action: Admin}, true, []string{"administration"}},
		{"administrator maintains directory", who("administrator"), Request{Action: Update, Type: "Organization", ID: "o"}, true, []string{"reference-admin"}},
		{"security officer administers", who("security-officer"), Request{Action: Admin}, true, []string{"administration"}},
		{"privacy officer administers not", who("privacy-officer"), Request{Action: Admin}, false, []string{"default-deny"}},
		{"auditor reads the log", who("auditor"), Request{Action: AuditRead, Type: "AuditEvent"}, true, []string{"audit-read"}},
		{"auditor reads no patient data", who("auditor"), Request{Action: Read, Type: "Patient", ID: "p1"}, false, []string{"default-deny"}},
		{"physician reads no log", who("physician"), Request{Action: AuditRead, Type: "AuditEvent"}, false, []string{"default-deny"}},

		{"untrained", with(who("physician"), func(p *Principal) { p.Trained = false }), obs(Read, "p1", "TREAT"), false, []string{"training-required"}},
		{"untrained reads reference data", with(who("physician"), func(p *Principal) { p.Trained = false }), Request{Action: Read, Type: "Location"}, true, []string{"reference-read"}},
		{"untrained patient", patient, obs(Read, "p1", ""), true, []string{"patient-own"}},
		{"no MFA on password login", with(who("physician"), func(p *Principal) { p.MFA = false; p.Method = "password" }), obs(Read, "p1", "TREAT"), false, []string{"mfa-required"}},
		{"no MFA on SSO login", with(who("physician"), func(p *Principal) { p.MFA = false; p.Method = "sso" }), obs(Read, "p1", "TREAT"), false, []string{"mfa-required"}},
		// A SMART token is as strong as the sign-in that authorized it.
		{"no MFA behind a SMART token", with(who("physician"), func(p *Principal) { p.MFA = false; p.Method = "smart"; p.Scopes = []string{"user/*.rs"} }), obs(Read, "p1", "TREAT"), false, []string{"mfa-required"}},
		{"MFA behind a SMART token", with(who("physician"), func(p *Principal) { p.MFA = true; p.Method = "smart"; p.Scopes = []string{"user/*.rs"} }), obs(Read, "p1", "TREAT"), true, []string{"clinical-care"}},
		{"no MFA on an operator token", with(who("physician"), func(p *Principal) { p.MFA = false; p.Method = "operator-token" }), obs(Read, "p1", "TREAT"), true, []string{"clinical-care"}},

		{"patient reads own", patient, obs(Read, "p1", ""), true, []string{"patient-own"}},
		{"patient reads own Patient", patient, Request{Action: Read, Type: "Patient", ID: "p1"}, true, []string{"patient-own"}},
		{"patient reads another", patient, obs(Read, "p9", ""), false, []string{"default-deny"}},
		{"patient writes own", patient, obs(Update, "p1", ""), false, []string{"default-deny"}},
		{"patient opens a search", patient, obs(Search, "", ""), true, []string{"patient-own"}},
		{"patient access report", patient, Request{Action: AuditRead, Type: "AuditEvent", Patient: "p1"}, true, []string{"patient-access-report"}},
		{"another's access report", patient, Request{Action: AuditRead, Type: "AuditEvent", Patient: "p2"}, false, []string{"default-deny"}},
		{"device posts observation", Principal{UserID: "d", Roles: []string{"device"}, Method: "mtls"}, obs(Create, "p1", ""), true, []string{"device"}},
		{"device reads", Principal{UserID: "d", Roles: []string{"device"}, Method: "mtls"}, obs(Read, "p1", ""), false, []string{"default-deny"}},
		{"vendor reads no patient data", Principal{UserID: "v", Roles: []string{"vendor"}, Method: "smart"}, obs(Read, "p1", ""), false, []string{"default-deny"}},
		{"vendor reads reference data", Principal{UserID: "v", Roles: []string{"vendor"}, Method: "smart"}, Request{Action: Search, Type: "Medication"}, true, []string{"reference-read"}},

		{"operator imports", op, obs(Create, "p2", ""), true, []string{"operator"}},
		{"operator deletes", op, obs(Delete, "p1", ""), true, []string{"operator"}},
		{"operator role over a login", with(op, func(p *Principal) { p.Method = "password+totp"; p.MFA = true; p.Trained = true }), obs(Read, "p1", ""), false, []string{"default-deny"}},
		{"no roles", Principal{UserID: "x"}, obs(Read, "p1", "TREAT"), false, []string{"default-deny"}},
		{"near-miss role", Principal{UserID: "x", Roles: []string{"Physician", "physician "}, MFA: true, Trained: true, Practitioner: "pr-physician"}, obs(Read, "p1", "TREAT"), false, []string{"default-deny"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.Principal = tt.p
			d := e.Decide(context.Background(), tt.r)
			if d.Allow != tt.allow || !cmp.Equal(d.Policies, tt.ids) {
				t.Errorf("Decide = %v %v (%q); want %v %v", d.Allow, d.Policies, d.Reason, tt.allow, tt.ids)
			}
			if !d.Allow && d.Reason == "" {
				t.Error("a denial without a reason")
			}
			if d.Allow && d.Reason != "" {
				t.Errorf("an allow with a reason %q", d.Reason)
			}
		})
	}
}

func TestBreakGlassExpiry(t *testing.T) {
	now := t0
	e := newTestEngine(t, &memFacts{}, WithClock(func() time.Time { return now }))
	p := with(who("physician"), func(p *Principal) { p.BreakGlass = &BreakGlass{Reason: "trauma", Until: t0.Add(60 * time.Minute)} })
	r := Request{Principal: p, Action: Read, Type: "Observation", Patient: "p9", Purpose: "ETREAT"}
	for _, tt := range []struct {
		at    time.Duration
		allow bool
		ids   []string
	}{
		{0, true, []string{"break-the-glass"}},
		{59*time.Minute + 59*time.Second, true, []string{"break-the-glass"}},
		{60 * time.Minute, false, []string{"default-deny"}},
		{3 * time.Hour, false, []string{"default-deny"}},
	} {
		now = t0.Add(tt.at)
		d := e.Decide(context.Background(), r)
		if d.Allow != tt.allow || !cmp.Equal(d.Policies, tt.ids) {
			t.Errorf("at +%v: %v %v; want %v %v", tt.at, d.Allow, d.Policies, tt.allow, tt.ids)
		}
		if !d.Allow && !strings.Contains(d.Reason, "expired") {
			t.Errorf("at +%v: reason %q does not say the window expired", tt.at, d.Reason)
		}
	}
}

func TestFactsErrorDenies(t *testing.T) {
	boom := errors.New("store unavailable")
	for name, f := range map[string]*memFacts{
		"relationships": {relErr: boom},
		"consents":      {consErr: boom},
	} {
		e := newTestEngine(t, f)
		// Every principal here has a Practitioner, so both facts are needed.
		for _, p := range []Principal{who("physician"), who("front-desk"), {UserID: "pat", Roles: []string{"patient"}, Patient: "p1", Practitioner: "x"}} {
			d := e.Decide(context.Background(), Request{Principal: p, Action: Read, Type: "Patient", ID: "p1", Purpose: "TREAT"})
			want := Decision{Policies: []string{"facts-unavailable"}, Reason: "access facts could not be checked; try again"}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("%s error, %s (-want +got):\n%s", name, p.Roles[0], diff)
			}
			if strings.Contains(d.Reason, boom.Error()) {
				t.Error("the internal error reaches the client")
			}
		}
	}
}

func TestReplace(t *testing.T) {
	e := newTestEngine(t, &memFacts{})
	adminReq := Request{Principal: who("administrator"), Action: Admin}
	bad := map[string]string{
		"syntax":          `permit (principal, action, resource`,
		"no id":           `permit (principal, action, resource);`,
		"duplicate id":    `@id("a") permit (principal, action, resource); @id("a") forbid (principal, action, resource);`,
		"reserved id":     `@id("default-deny") permit (principal, action, resource);`,
		"reserved prefix": `@id("consent:x") permit (principal, action, resource);`,
		"empty":           "// nothing\n",
		"misspelt attr":   `@id("a") permit (principal, action, resource) when { principal.trainedd };`,
		"misspelt ctx":    `@id("a") forbid (principal, action, resource) when { context.breakglass };`,
	}
	for name, src := range bad {
		if Validate([]byte(src)) == nil {
			t.Errorf("%s: Validate accepted an invalid set", name)
		}
		if err := e.Replace([]byte(src)); err == nil {
			t.Errorf("%s: Replace accepted an invalid set", name)
		}
		if d := e.Decide(context.Background(), adminReq); !d.Allow || !cmp.Equal(d.Policies, []string{"administration"}) {
			t.Errorf("%s: after a refused Replace, Decide = %+v; the old set must stay", name, d)
		}
	}
	lockdown := `// Nothing but audit reads.
@id("audit-only")
permit (principal, action == Action::"audit-read", resource);
`
	if !bytes.Equal(e.Source(), DefaultPolicies()) {
		t.Error("after refused replacements, Source is not the default set")
	}
	if err := Validate([]byte(lockdown)); err != nil {
		t.Fatalf("Validate(valid): %v", err)
	}
	if err := e.Replace([]byte(lockdown)); err != nil {
		t.Fatalf("Replace(valid): %v", err)
	}
	if string(e.Source()) != lockdown {
		t.Errorf("Source after Replace = %q", e.Source())
	}
	if d := e.Decide(context.Background(), adminReq); d.Allow || !cmp.Equal(d.Policies, []string{"default-deny"}) {
		t.Errorf("after Replace, admin = %+v; want the new set's default deny", d)
	}
	d := e.Decide(context.Background(), Request{Principal: who("nurse"), Action: AuditRead, Type: "AuditEvent"})
	if !d.Allow || !cmp.Equal(d.Policies, []string{"audit-only"}) {
		t.Errorf("after Replace, audit-read = %+v; want allowed by audit-only", d)
	}
	if _, err := NewEngine([]byte("garbage"), &memFacts{}); err == nil {
		t.Error("NewEngine accepted an invalid set")
	}
	if _, err := NewEngine(DefaultPolicies(), nil); err == nil {
		t.Error("NewEngine accepted nil facts")
	}
}

// TestReplaceConcurrent runs decisions while the set is swapped (run with
// -race): every decision comes from one whole set or the other.
func TestReplaceConcurrent(t *testing.T) {
	e := newTestEngine(t, &memFacts{})
	other := []byte(`@id("all-admin") permit (principal, action == Action::"admin", resource);`)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				d := e.Decide(context.Background(), Request{Principal: who("administrator"), Action: Admin})
				if !d.Allow || (d.Policies[0] != "administration" && d.Policies[0] != "all-admin") {
					t.Errorf("Decide during Replace = %+v", d)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		src := DefaultPolicies()
		if i%2 == 0 {
			src = other
		}
		if err := e.Replace(src); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
