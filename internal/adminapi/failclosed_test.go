package adminapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
)

// A disable through the API on one node reaches another node sharing the
// store within the directory's refresh (2 s), inside the 5 s.
func TestDisableReachesOtherNode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	o := account.DefaultOptions(e.log)
	o.Now = e.clk.Now
	other, err := account.Open(ctx, e.st, e.b, o)
	if err != nil {
		t.Fatal(err)
	}
	bearer := &authn.Bearer{Operator: e.tokens, Accounts: other}
	if _, err := bearer.Check(e.tok["phil"]); err != nil {
		t.Fatalf("the other node refuses a good token: %v", err)
	}
	if r := e.do("ada", "POST", "/admin/v1/users/phil/disable", map[string]string{"reason": "suspended"}); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	e.clk.Add(2 * time.Second)
	if _, err := bearer.Check(e.tok["phil"]); err == nil {
		t.Fatal("2 s after the disable the other node still accepts the token")
	}
}

// brokenAudit cannot record anything.
type brokenAudit struct{}

func (brokenAudit) Record(context.Context, *audit.Event) error { return errors.New("disk full") }

// Reads are fail-closed: if the read cannot be audited, no data leaves
// (503); a denial that cannot be audited is 503 too.
func TestReadsFailClosed(t *testing.T) {
	e := newEnv(t)
	eng, err := policy.NewEngine(policy.DefaultPolicies(), noFacts{})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := Routes(Config{Accounts: e.dir, Auth: &authn.Bearer{Operator: e.tokens, Accounts: e.dir}, Policy: eng, Audit: brokenAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.Handle(p, h)
	}
	e.h = mux
	for _, tc := range []struct{ user, path string }{
		{"ada", "/admin/v1/access-review?format=csv"}, {"ada", "/admin/v1/users"}, {"ada", "/admin/v1/users/phil"}, {"phil", "/admin/v1/users"},
	} {
		r := e.do(tc.user, "GET", tc.path, nil)
		if r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "Phil Physician") {
			t.Errorf("%s %s with the audit log down: %d %s", tc.user, tc.path, r.status, r.body)
		}
	}
}
