package authn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
)

type smartStub struct{ p policy.Principal }

func (s smartStub) Check(string) (policy.Principal, error) { return s.p, nil }

// An operator token for a named user acts as that user's account, now:
// disabling, revoking or taking the role away ends it; operator-role
// tokens need no account; anything else goes to the SMART checker.
func TestBearer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tk := e.tokens(t)
	dir, err := account.Open(ctx, e.st, e.b, account.DefaultOptions(audit.NewLog(e.st, 5*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Create(ctx, account.Account{ID: "alice", Roles: []string{"physician", "researcher"}, Practitioner: "pr1"}, "plum-giraffe-lantern-77", "admin"); err != nil {
		t.Fatal(err)
	}
	a, _ := dir.Get(ctx, "alice")
	b := &Bearer{Operator: tk, Accounts: dir, SMART: smartStub{policy.Principal{UserID: "app-user", Method: "smart"}}}
	mint := func(user string, roles []string, epoch int) string {
		tok, _, err := tk.MintAccount(user, roles, epoch, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Reveal()
	}

	op, err := b.Check(mint("ops", []string{OperatorRole}, 0))
	if err != nil || op.UserID != "ops" || op.Method != "operator-token" {
		t.Fatalf("operator token = %+v, %v", op, err)
	}
	doc := mint("alice", []string{"physician"}, a.Epoch)
	p, err := b.Check(doc)
	if err != nil {
		t.Fatal(err)
	}
	if p.Practitioner != "pr1" || len(p.Roles) != 1 || p.Roles[0] != "physician" || p.Method != "operator-token" {
		t.Errorf("user token principal = %+v: want the account's practitioner, only the token's role", p)
	}
	for name, tok := range map[string]string{
		"role the account lacks":     mint("alice", []string{"nurse"}, a.Epoch),
		"operator mixed with a role": mint("alice", []string{"physician", OperatorRole}, a.Epoch),
		"no such account":            mint("mallory", []string{"physician"}, 1),
		"stale epoch":                mint("alice", []string{"physician"}, a.Epoch-1),
	} {
		if _, err := b.Check(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Check = %v, want ErrInvalidToken", name, err)
		}
	}
	if err := dir.Disable(ctx, "alice", "admin", "left"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Check(doc); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of a disabled user = %v, want ErrInvalidToken", err)
	}
	if p, err := b.Check("eyJhbGciOiJFUzI1NiJ9.x.y"); err != nil || p.Method != "smart" {
		t.Errorf("non-operator token = %+v, %v: want the SMART checker's answer", p, err)
	}
	if _, err := (&Bearer{Operator: tk}).Check("eyJ.x.y"); !errors.Is(err, ErrInvalidToken) {
		t.Error("without a SMART checker a JWT is accepted")
	}
	if _, err := (&Bearer{Operator: tk}).Check(doc); !errors.Is(err, ErrInvalidToken) {
		t.Error("without accounts a user token is accepted")
	}
}
