package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseScope(t *testing.T) {
	good := map[string]Scope{
		"patient/Observation.read": {Context: "patient", Type: "Observation", Perms: "rs"},
		"user/*.write":             {Context: "user", Type: "*", Perms: "cud"},
		"system/*.*":               {Context: "system", Type: "*", Perms: "cruds"},
		"patient/Observation.rs":   {Context: "patient", Type: "Observation", Perms: "rs"},
		"user/*.cruds":             {Context: "user", Type: "*", Perms: "cruds"},
		"system/*.rs":              {Context: "system", Type: "*", Perms: "rs"},
		"user/Patient.c":           {Context: "user", Type: "Patient", Perms: "c"},
		"user/Patient.ud":          {Context: "user", Type: "Patient", Perms: "ud"},
		"patient/Observation.rs?category=laboratory": {Context: "patient", Type: "Observation", Perms: "rs",
			Category: [][]string{{"laboratory"}}},
		"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs,laboratory": {
			Context: "patient", Type: "Observation", Perms: "rs", Category: [][]string{{"vital-signs", "laboratory"}}},
		"patient/Condition.rs?category=a&category=b%7Cc": {Context: "patient", Type: "Condition", Perms: "rs",
			Category: [][]string{{"a"}, {"c"}}},
	}
	for in, want := range good {
		got, err := ParseScope(in)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseScope(%q) (-want +got):\n%s", in, diff)
		}
	}
	bad := []string{
		"", "openid", "fhirUser", "launch", "launch/patient", "offline_access", "profile",
		"patient/Observation", "patient/Observation.", "patient/.read", "admin/*.read",
		"Patient/Observation.read", "patient/observation.read", "patient/Obs-ervation.rs",
		"user/*.sr", "user/*.rr", "user/*.x", "user/*.cruds ", "user/*.READ",
		"patient/Observation.read?category=laboratory", // parameters need v2
		"patient/Observation.rs?code=1234",             // only category narrows; others refused, not widened
		"patient/Observation.rs?category=", "patient/Observation.rs?", "patient/Observation.rs?category=%zz",
		"patient/Observation.rs?category=a,", "user/" + strings.Repeat("A", 600) + ".rs",
	}
	for _, in := range bad {
		if s, err := ParseScope(in); err == nil || !errors.Is(err, ErrNotResourceScope) {
			t.Errorf("ParseScope(%q) = %+v, %v; want ErrNotResourceScope", in, s, err)
		}
	}
}

func TestScopeAllows(t *testing.T) {
	launch := Principal{UserID: "app", Patient: "p1"}
	req := func(a Action, typ, patient string, cat ...string) Request {
		return Request{Principal: launch, Action: a, Type: typ, Patient: patient, Category: cat}
	}
	tests := []struct {
		scope string
		r     Request
		want  bool
	}{
		{"patient/Observation.read", req(Read, "Observation", "p1"), true},
		{"patient/Observation.read", req(Search, "Observation", "p1"), true},
		{"patient/Observation.read", req(Create, "Observation", "p1"), false},
		{"patient/Observation.read", req(Read, "Observation", "p2"), false},
		{"patient/Observation.read", req(Read, "Condition", "p1"), false},
		{"patient/Observation.read", Request{Principal: Principal{UserID: "app"}, Action: Read, Type: "Observation", Patient: "p1"}, false},
		{"patient/*.rs", req(Search, "Observation", ""), true},
		{"patient/*.cruds", req(Create, "Observation", ""), false},
		{"patient/*.rs", req(Read, "Practitioner", ""), true},
		{"patient/Observation.r", req(Search, "Observation", "p1"), false},
		{"patient/Observation.s", req(Read, "Observation", "p1"), false},
		{"user/*.write", req(Update, "Observation", "p2"), true},
		{"user/*.write", req(Delete, "Observation", "p2"), true},
		{"user/*.write", req(Read, "Observation", "p2"), false},
		{"user/*.cruds", req(Read, "Observation", "p2"), true},
		{"user/*.cruds", req(Admin, "", ""), false},
		{"system/*.*", req(Admin, "", ""), false},
		{"system/*.rs", req(Export, "", ""), true},
		{"system/*.r", req(Export, "", ""), false},
		{"system/Observation.rs", req(Read, "", ""), false},
		{"user/AuditEvent.r", req(AuditRead, "AuditEvent", ""), true},
		{"user/Observation.r", req(AuditRead, "AuditEvent", ""), false},
		{"patient/Observation.rs?category=laboratory", req(Read, "Observation", "p1", "laboratory"), true},
		{"patient/Observation.rs?category=laboratory", req(Read, "Observation", "p1", "vital-signs"), false},
		{"patient/Observation.rs?category=laboratory", req(Read, "Observation", "p1"), false},
		{"patient/Observation.rs?category=laboratory", req(Search, "Observation", "p1"), true},
		{"patient/Observation.rs?category=laboratory,vital-signs", req(Read, "Observation", "p1", "vital-signs"), true},
		{"patient/Observation.rs?category=a&category=b", req(Read, "Observation", "p1", "a"), false},
		{"patient/Observation.rs?category=a&category=b", req(Read, "Observation", "p1", "b", "a"), true},
	}
	for _, tt := range tests {
		s, err := ParseScope(tt.scope)
		if err != nil {
			t.Fatalf("ParseScope(%q): %v", tt.scope, err)
		}
		if got := s.Allows(tt.r); got != tt.want {
			t.Errorf("%q allows %s %s patient=%q category=%v: %v, want %v", tt.scope, tt.r.Action, tt.r.Type, tt.r.Patient, tt.r.Category, got, tt.want)
		}
	}
}

// TestScopesNarrowOnly: through the engine, scopes take away what they do
// not cover and never add what the role lacks.
func TestScopesNarrowOnly(t *testing.T) {
	e := newTestEngine(t, &memFacts{rels: map[[2]string][]string{{"pr-physician", "p1"}: {"careteam"}}})
	doc := func(scopes ...string) Principal {
		return with(who("physician"), func(p *Principal) { p.Scopes = scopes; p.Method = "smart"; p.Patient = "p1" })
	}
	pat := func(scopes ...string) Principal {
		return Principal{UserID: "pat", Roles: []string{"patient"}, Patient: "p1", Method: "smart", Scopes: scopes}
	}
	tests := []struct {
		name  string
		p     Principal
		r     Request
		allow bool
		ids   []string
	}{
		{"no scope limit", doc(), Request{Action: Read, Type: "Observation", Patient: "p1"}, false, []string{"smart-scope"}},
		{"only openid", doc("openid", "fhirUser"), Request{Action: Read, Type: "Observation", Patient: "p1"}, false, []string{"smart-scope"}},
		{"within scope", doc("openid", "user/Observation.rs"), Request{Action: Read, Type: "Observation", Patient: "p1"}, true, []string{"clinical-care"}},
		{"write outside scope", doc("user/Observation.rs"), Request{Action: Update, Type: "Observation", Patient: "p1"}, false, []string{"smart-scope"}},
		{"scope wider than role", doc("user/*.cruds"), Request{Action: Delete, Type: "Observation", Patient: "p1"}, false, []string{"default-deny"}},
		{"scope does not add patients", doc("user/*.cruds"), Request{Action: Read, Type: "Observation", Patient: "p2"}, false, []string{"default-deny"}},
		{"launch context only", doc("patient/*.rs"), Request{Action: Read, Type: "Observation", Patient: "p2"}, false, []string{"smart-scope"}},
		{"patient app, category", pat("patient/Observation.rs?category=laboratory"),
			Request{Action: Read, Type: "Observation", Patient: "p1", Category: []string{"laboratory"}}, true, []string{"patient-own"}},
		{"patient app, other category", pat("patient/Observation.rs?category=laboratory"),
			Request{Action: Read, Type: "Observation", Patient: "p1", Category: []string{"social-history"}}, false, []string{"smart-scope"}},
		{"system scope, admin", Principal{UserID: "svc", Roles: []string{"administrator"}, Scopes: []string{"system/*.*"}}, Request{Action: Admin}, false, []string{"smart-scope"}},
		{"device scope", Principal{UserID: "d", Roles: []string{"device"}, Scopes: []string{"system/Observation.c"}},
			Request{Action: Create, Type: "Observation", Patient: "p3"}, true, []string{"device"}},
		{"device scope, other type", Principal{UserID: "d", Roles: []string{"device"}, Scopes: []string{"system/Observation.c"}},
			Request{Action: Create, Type: "Device", Patient: "p3"}, false, []string{"smart-scope"}},
	}
	for _, tt := range tests {
		tt.r.Principal, tt.r.Purpose = tt.p, "TREAT"
		if tt.name == "no scope limit" {
			tt.r.Principal.Scopes = []string{} // an empty, non-nil list allows nothing
		}
		d := e.Decide(context.Background(), tt.r)
		if d.Allow != tt.allow || !cmp.Equal(d.Policies, tt.ids) {
			t.Errorf("%s: Decide = %v %v; want %v %v", tt.name, d.Allow, d.Policies, tt.allow, tt.ids)
		}
	}
}

// FuzzParseScope: ParseScope never panics; what it accepts is a
// well-formed scope, and Allows never panics on it.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"patient/Observation.read", "user/*.cruds", "system/*.*",
		"patient/Observation.rs?category=laboratory", "patient/Condition.rs?category=a|b,c&category=d",
		"openid", "user/*.sr", "patient/X.rs?category=%7C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseScope(in)
		if err != nil {
			if !errors.Is(err, ErrNotResourceScope) {
				t.Fatalf("ParseScope(%q) error %v does not wrap ErrNotResourceScope", in, err)
			}
			return
		}
		if s.Context != "patient" && s.Context != "user" && s.Context != "system" {
			t.Fatalf("ParseScope(%q) context %q", in, s.Context)
		}
		if _, ok := v2Perms(s.Perms); !ok {
			t.Fatalf("ParseScope(%q) permissions %q not in cruds order", in, s.Perms)
		}
		if !validType(s.Type) {
			t.Fatalf("ParseScope(%q) type %q", in, s.Type)
		}
		for _, g := range s.Category {
			if len(g) == 0 {
				t.Fatalf("ParseScope(%q) has an empty category group", in)
			}
			for _, c := range g {
				if c == "" {
					t.Fatalf("ParseScope(%q) has an empty category", in)
				}
			}
		}
		for _, a := range []Action{Read, Search, Create, Update, Delete, Export, Admin, AuditRead} {
			if s.Allows(Request{Action: a, Type: "Observation"}) && a == Admin {
				t.Fatalf("ParseScope(%q) allows admin", in)
			}
		}
	})
}
