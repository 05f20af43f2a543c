package account

import (
	"context"
	"errors"
	"testing"
)

// An account made for single sign-on has no password: no password, not
// even an empty one, signs it in; an empty role list takes everything
// away and ends its sessions.
func TestExternalAccount(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	d := e.open(t)
	a := Account{ID: "sso.abc-DEF_123", Name: "Dr SSO", Roles: []string{"physician"}}
	if err := d.CreateExternal(ctx, a, "sso"); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, Account{ID: "local", Roles: []string{"nurse"}}, "", "admin"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("Create with an empty password = %v, want ErrWeakPassword", err)
	}
	for _, pw := range []Password{"", "x", "correct horse battery staple"} {
		if _, err := d.Login(ctx, a.ID, pw, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("password login %q for an external account = %v, want ErrBadCredentials", pw, err)
		}
	}
	got, err := d.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Valid(ctx, a.ID, got.Epoch); err != nil {
		t.Fatalf("Valid before role removal: %v", err)
	}
	if err := d.SetRoles(ctx, a.ID, nil, "sso"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Valid(ctx, a.ID, got.Epoch); err == nil {
		t.Error("a session from before all roles were taken away is still valid")
	}
	now, _ := d.Get(ctx, a.ID)
	if len(now.Roles) != 0 {
		t.Errorf("roles = %v, want none", now.Roles)
	}
}
