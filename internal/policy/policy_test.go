package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	admin := Principal{UserID: "op", Roles: []string{"auditor", "administrator"}, Method: "operator-token"}
	actions := []Action{Read, Search, Create, Update, Delete, Export, Admin}
	others := map[string]Principal{
		"no roles":          {UserID: "u"},
		"physician":         {UserID: "doc", Roles: []string{"physician"}},
		"patient":           {UserID: "pat", Roles: []string{"patient"}, Patient: "p1"},
		"near miss":         {UserID: "x", Roles: []string{"Administrator", "administrator ", "admin"}},
		"scope not role":    {UserID: "app", Scopes: []string{"administrator"}, ClientID: "administrator"},
		"anonymous (empty)": {},
	}
	for _, a := range actions {
		req := Request{Principal: admin, Action: a, Type: "Patient", ID: "p1", Patient: "p1", Purpose: "treatment"}
		want := Decision{Allow: true, Policies: []string{"bootstrap-administrator"}}
		if diff := cmp.Diff(want, Bootstrap{}.Decide(ctx, req)); diff != "" {
			t.Errorf("administrator %s (-want +got):\n%s", a, diff)
		}
		for name, p := range others {
			d := Bootstrap{}.Decide(ctx, Request{Principal: p, Action: a, Type: "Patient", ID: "p1", Patient: "p1", Purpose: "emergency"})
			if d.Allow {
				t.Errorf("%s allowed to %s", name, a)
			}
			if d.Reason == "" || len(d.Policies) == 0 {
				t.Errorf("%s %s denial = %+v: want a reason and the deciding policy", name, a, d)
			}
		}
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Error("a bare context carries a principal")
	}
	p := Principal{UserID: "u", Roles: []string{"administrator"}}
	got, ok := PrincipalFrom(WithPrincipal(context.Background(), p))
	if !ok || !cmp.Equal(got, p) {
		t.Errorf("PrincipalFrom = %+v, %v; want %+v", got, ok, p)
	}
	if !p.Has("administrator") || p.Has("admin") || (Principal{}).Has("") {
		t.Error("Has matches other than the exact role")
	}
}
