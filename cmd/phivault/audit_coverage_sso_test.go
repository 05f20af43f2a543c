package main

// Audit coverage of the single sign-on routes (GET /sso/login and the
// callback), against zitadel/oidc's OpenID provider run by the test.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/sso"
	"github.com/phivault/phivault/internal/server"
)

// acIDPStorage is the example storage with a groups claim and a second
// factor in "amr" for every user.
type acIDPStorage struct{ *storage.Storage }

type acAMR struct{ *storage.AuthRequest }

func (acAMR) GetAMR() []string { return []string{"pwd", "otp"} }

func (s acIDPStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	req, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	ar, ok := req.(*storage.AuthRequest)
	if !ok {
		return nil, errors.New("unexpected auth request type")
	}
	return acAMR{ar}, nil
}

func (s acIDPStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	ui.AppendClaims("groups", []string{"nurses"})
	return nil
}

// acSSOQuiet are the single sign-on routes that record nothing, and why.
var acSSOQuiet = map[string]string{
	"GET /sso/login": "sends the browser to the provider; the outcome is audited at the callback",
}

// TestAuditCoverageSSO performs the single sign-on routes, served by the
// public handler with the routes openAccessWith adds for --sso-config.
func TestAuditCoverageSSO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server with the authorization matrix's data and an OpenID provider")
	}
	e := newMxEnv(t)
	var idpH atomic.Pointer[http.Handler]
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*idpH.Load()).ServeHTTP(w, r) }))
	t.Cleanup(idp.Close)
	var rpH atomic.Pointer[http.Handler]
	rp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*rpH.Load()).ServeHTTP(w, r) }))
	t.Cleanup(rp.Close)
	redirect := rp.URL + sso.CallbackPath
	st := acIDPStorage{storage.NewStorageWithClients(storage.NewUserStore(idp.URL),
		map[string]*storage.Client{"phivault": storage.WebClient("phivault", "secret-phivault", redirect)})}
	var h http.Handler = exampleop.SetupServer(idp.URL, st, slog.New(slog.DiscardHandler), false)
	idpH.Store(&h)

	// ssoRoutes' handler, with the provider's test certificate trusted.
	cfg := sso.Config{Issuer: idp.URL, ClientID: "phivault", ClientSecret: account.Secret("secret-phivault"), RedirectURL: redirect,
		RoleMap: map[string][]string{"nurses": {"nurse"}}, CookieKey: account.Secret(bytes.Repeat([]byte{9}, 32))}
	sh, err := sso.New(cfg, sso.Deps{Accounts: e.acc.accounts, Sessions: e.acc.sessions, Audit: e.n.audit, HTTPClient: idp.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ssoRoutes := sh.Routes()
	all := maps.Clone(e.acc.routes)
	maps.Copy(all, ssoRoutes)
	var ph http.Handler = e.n.gate(server.Handler(server.Config{Routes: all, FHIR: http.NotFoundHandler(), Auth: e.acc.auth, Sessions: e.acc.sessions,
		Audit: e.n.audit, Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()}))
	rpH.Store(&ph)

	c := &acCov{t: t, db: e.n.db, covered: map[string]bool{}}
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: time.Minute, Transport: idp.Client().Transport} // one test certificate for both
	var authReq string
	c.check("GET /sso/login", acSSOQuiet["GET /sso/login"], func() error {
		resp, err := b.Get(rp.URL + "/sso/login")
		if err != nil {
			return err
		}
		resp.Body.Close()
		authReq = resp.Request.URL.Query().Get("authRequestID")
		if resp.StatusCode != http.StatusOK || authReq == "" {
			return fmt.Errorf("expected the provider's login page, got %d at %s", resp.StatusCode, resp.Request.URL)
		}
		return nil
	})
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.PostForm(idp.URL+"/login/username", url.Values{"username": {"test-user@127.0.0.1"}, "password": {"verysecure"}, "id": {authReq}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	for i := 0; i < 5 && strings.HasPrefix(callback, idp.URL); i++ { // the provider's own hops
		resp, err := b.Get(callback)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		callback = resp.Header.Get("Location")
	}
	if !strings.HasPrefix(callback, redirect) {
		t.Fatalf("the provider did not send the browser back: %d %q", resp.StatusCode, callback)
	}
	other := &http.Client{Timeout: time.Minute, Transport: idp.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(b *http.Client, u string, status int) func() error {
		return func() error {
			resp, err := b.Get(u)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				return fmt.Errorf("GET %s: status %d, want %d", u, resp.StatusCode, status)
			}
			return nil
		}
	}
	user := sso.AccountID(idp.URL, "id1")
	c.check("GET "+sso.CallbackPath, "a callback without the browser's login cookie (a forged or replayed state)", get(other, redirect+"?code=x&state=forged", http.StatusBadRequest),
		acEvent{Interaction: "login-failed", Action: "E", Outcome: "4", Decision: "deny"})
	c.check("GET "+sso.CallbackPath, "signed in", get(b, callback, http.StatusFound),
		// The account is created at the first sign-in. The sso handler
		// records "login" and then Sessions.Start records its own: one
		// sign-in, two login events (to be folded into one).
		acEvent{Interaction: "user-create", Action: "C", Outcome: "0", User: "sso", Decision: "permit", Entities: []string{"urn:phivault:user:" + user}},
		acEvent{Interaction: "login", Action: "E", Outcome: "0", User: user, Decision: "permit"},
		acEvent{Interaction: "login", Action: "E", Outcome: "0", User: user, Decision: "permit"})
	for r := range ssoRoutes {
		if !c.covered[r] {
			t.Errorf("single sign-on route %q has no audit coverage case", r)
		}
	}
}
