package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/phivault/phivault/internal/adminapi"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/passkey"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/authn/smart"
	"github.com/phivault/phivault/internal/authn/sso"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/policy/care"
	"github.com/phivault/phivault/internal/web"
)

// policyFileName is where a data directory kept its replacement of the
// default Cedar policy set before sets were kept in the store (see
// policySource): still honoured while the store holds none.
const policyFileName = "policy.cedar"

// openPolicy returns the decision point of the node: the Cedar engine
// over the store's policy set (see policySource: the data directory's
// policy.cedar or the shipped default while the store holds none), with
// care relationships and consents read from the data.
func (n *node) openPolicy() (*policy.Engine, error) { return n.openPolicyAt(nil) }

// openPolicyAt is openPolicy with the clock of break-the-glass windows,
// consent periods and care relationships (nil: time.Now).
func (n *node) openPolicyAt(now func() time.Time) (*policy.Engine, error) {
	src, from, sum, err := n.policySource(context.Background())
	if err != nil {
		return nil, err
	}
	var opts []policy.Option
	if now != nil {
		opts = append(opts, policy.WithClock(now))
	}
	e, err := policy.NewEngine(src, care.New(n.records, n.search, care.Options{Now: now}), opts...)
	if err != nil {
		return nil, policyLoadError{fail(exitFail, "the policy set in "+from+" does not load: "+oneLine(err),
			"install a valid one with 'phivault policy set --data DIR FILE', or 'phivault policy reset --data DIR'")}
	}
	n.registerPolicySync(sum)
	return e, nil
}

// access is the sign-in side of a serving node: accounts, console
// sessions (password, TOTP, passkeys, break-the-glass), the SMART on FHIR
// authorization server, and the bearer-token authenticator.
type access struct {
	accounts *account.Directory
	sessions *session.Manager
	smart    *smart.Server
	routes   map[string]http.Handler
	auth     *authn.Bearer
}

// accessOptions tune openAccessWith; the zero value is what serve uses.
type accessOptions struct {
	// Now is the clock of accounts (training, lockouts), sessions
	// (timeouts, break-the-glass windows), TOTP codes and SMART tokens;
	// nil: time.Now. Tests move it forward.
	Now func() time.Time
	// SSOConfig is an --sso-config file: single sign-on through that
	// OpenID provider ("": none).
	SSOConfig string
}

// openAccess wires the sign-in side for a server reachable at base
// (https://host:port).
func (n *node) openAccess(ctx context.Context, base string, log *slog.Logger, ssoConfig string) (*access, error) {
	return n.openAccessWith(ctx, base, log, accessOptions{SSOConfig: ssoConfig})
}

// openAccessWith is openAccess with options.
func (n *node) openAccessWith(ctx context.Context, base string, log *slog.Logger, o accessOptions) (*access, error) {
	a := &access{}
	var err error
	var ssoCfg sso.Config
	var ssoName string
	if o.SSOConfig != "" {
		if ssoCfg, ssoName, err = n.readSSOConfig(o.SSOConfig); err != nil {
			return nil, err
		}
	}
	acctOpts := account.DefaultOptions(n.audit)
	acctOpts.Now = o.Now
	if a.accounts, err = account.Open(ctx, n.db, n.barrier, acctOpts); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	reasonHash := func(reason string) string { return fmt.Sprintf("%x", n.barrier.Token("break-glass-reason", reason)) }
	keep, err := session.NewStoreKeeper(ctx, n.db, n.barrier)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	if a.sessions, err = session.New(session.Options{Accounts: a.accounts, Audit: n.audit, Log: log, Keep: keep, ReasonHash: reasonHash, Now: o.Now}); err != nil {
		return nil, err
	}
	go a.sessions.Run(ctx, time.Minute)
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	pk, err := passkey.New(passkey.Config{RPID: u.Hostname(), RPName: "phivault", Origins: []string{base},
		Directory: a.accounts, Handles: passkey.NewHandleIndex(a.accounts, 0), Sessions: a.sessions, Audit: n.audit, Log: log, Now: o.Now})
	extra := map[string]http.Handler{}
	if err != nil {
		log.Warn("passkeys are off for this address", "reason", err.Error())
		pk = nil
	} else {
		extra = pk.Routes()
	}
	if a.routes, err = web.Handler(web.Options{Sessions: a.sessions, Accounts: a.accounts, Audit: n.audit, Log: log,
		Passkeys: pk != nil, Extra: extra, Now: o.Now, SSO: ssoName}); err != nil {
		return nil, err
	}
	if ssoName != "" {
		routes, err := n.ssoRoutes(ssoCfg, a, log)
		if err != nil {
			return nil, err
		}
		maps.Copy(a.routes, routes)
	}
	a.smart, err = smart.Open(ctx, smart.Config{Store: n.db, Barrier: n.barrier, Issuer: base,
		Login: consoleLogin{a.sessions}, Accounts: a.accounts, Audit: n.audit, Log: log, Now: o.Now})
	if err != nil {
		return nil, fmt.Errorf("SMART authorization server: %w", err)
	}
	for p, h := range a.smart.Routes() {
		a.routes[p] = h
	}
	a.auth = &authn.Bearer{Operator: n.tokens, Accounts: a.accounts, SMART: a.smart}
	// User administration and the access review over HTTPS (/admin/v1/),
	// decided by the same policy engine as the FHIR API.
	admin, err := adminapi.Routes(adminapi.Config{Accounts: a.accounts, Auth: a.auth, Sessions: a.sessions,
		Policy: n.policy, Audit: n.audit, Log: log, Now: o.Now})
	if err != nil {
		return nil, err
	}
	maps.Copy(a.routes, admin)
	a.routes["GET /readyz"] = n.readyHandler() // what load balancers route on (docs/scaling.md)
	return a, nil
}

// consoleLogin lets the SMART authorization endpoint find the signed-in
// console user, or send the browser to sign in first.
type consoleLogin struct{ s *session.Manager }

func (c consoleLogin) User(r *http.Request) (policy.Principal, bool) { return c.s.Principal(r) }
func (c consoleLogin) LoginURL(next string) string {
	return "/login?" + url.Values{"next": {next}}.Encode()
}
