package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// FuzzDecide: whatever the request, the default policies evaluate without
// error, every decision names its policies, a denial has a reason, and a
// caller without roles, or with an empty scope list, is never allowed.
func FuzzDecide(f *testing.F) {
	f.Add("physician", "read", "Observation", "o1", "p1", "TREAT", "R", "user/*.rs", "password+totp", uint8(0xff))
	f.Add("patient", "search", "", "", "", "", "", "", "smart", uint8(0))
	f.Add("operator", "delete", "Patient", "p1", "", "emergency", "V", "", "local-cli", uint8(2))
	f.Add("front-desk", "audit-read", "AuditEvent", "", "p1", "HPAYMT", "HIV", "patient/Observation.rs?category=x", "sso", uint8(9))
	e := newTestEngine(f, &memFacts{
		rels:     map[[2]string][]string{{"pr", "p1"}: {"careteam"}},
		consents: map[string][]Consent{"p1": {{ID: "c", Labels: []string{"HIV"}}, {ID: "r", Permit: true, Purpose: []string{"HRESCH"}}}},
	})
	f.Fuzz(func(t *testing.T, role, action, typ, id, patient, purpose, label, scope, method string, bits uint8) {
		p := Principal{UserID: "u", Roles: []string{role}, Method: method, Practitioner: "pr", Patient: "p1",
			MFA: bits&1 != 0, Trained: bits&2 != 0}
		if bits&4 != 0 {
			p.BreakGlass = &BreakGlass{Until: t0.Add(time.Duration(bits) * time.Minute)}
		}
		if bits&8 != 0 {
			p.Scopes = []string{scope}
		}
		r := Request{Principal: p, Action: Action(action), Type: typ, ID: id, Patient: patient, Purpose: purpose,
			Labels: []string{label}, Category: []string{label}}
		d := e.Decide(context.Background(), r)
		if len(d.Policies) == 0 || slices.Contains(d.Policies, "policy-error") {
			t.Fatalf("Decide(%+v) = %+v", r, d)
		}
		if d.Allow == (d.Reason != "") {
			t.Fatalf("Decide(%+v) = %+v: a denial needs a reason, an allow has none", r, d)
		}
		r.Principal.Roles = nil
		if d := e.Decide(context.Background(), r); d.Allow {
			t.Fatalf("no roles, allowed: %+v", d)
		}
		r.Principal.Roles, r.Principal.Scopes = []string{role}, []string{}
		if d := e.Decide(context.Background(), r); d.Allow {
			t.Fatalf("empty scope list, allowed: %+v", d)
		}
	})
}
