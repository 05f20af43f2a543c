package web

import (
	"context"
	"errors"
	"fmt"
	"github.com/phivault/phivault/internal/browsertest"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/passkey"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// passkeyStack is the console with the passkey ceremonies, served through
// server.Handler on http://localhost (a secure context, so WebAuthn works
// without a certificate) over a real account directory and audit log.
type passkeyStack struct {
	url      string
	dir      *account.Directory
	sessions *session.Manager
	st       *sqlite.Backend
}

func newPasskeyStack(t *testing.T) *passkeyStack {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	kp := filepath.Join(tmp, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(tmp, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(ctx, kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(st, 0)
	d, err := account.Open(ctx, st, b, account.DefaultOptions(log))
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.New(session.Options{Accounts: d, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	pk, err := passkey.New(passkey.Config{RPID: "localhost", RPName: "phivault", Origins: []string{origin},
		Directory: d, Handles: passkey.NewHandleIndex(d, 0), Sessions: m, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := Handler(Options{Sessions: m, Accounts: d, Audit: log, Passkeys: true, Extra: pk.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	h := server.Handler(server.Config{FHIR: http.NotFoundHandler(), Routes: routes, Audit: log,
		Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()})
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return &passkeyStack{url: origin, dir: d, sessions: m, st: st}
}

// principal returns the principal the browser's session cookie holds.
func (s *passkeyStack) principal(t *testing.T, bctx context.Context) (policy.Principal, bool) {
	t.Helper()
	cookies, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url + "/"}})
		return res.Cookies, err
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, s.url+"/console/", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return s.sessions.Principal(r)
}

// audited counts audit events whose JSON contains every one of subs.
func (s *passkeyStack) audited(t *testing.T, subs ...string) int {
	t.Helper()
	n := 0
	err := s.st.View(context.Background(), func(r store.Reader) error {
		size, err := r.AuditSize()
		if err != nil {
			return err
		}
		leaves, err := r.AuditLeaves(0, size)
		if err != nil {
			return err
		}
		for _, l := range leaves {
			if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(string(l), s) }) {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// virtualAuthenticator enables the WebAuthn domain and adds a platform
// authenticator (CTAP2, internal transport, resident keys, user
// verification that succeeds, presence given automatically).
func virtualAuthenticator(t *testing.T, bctx context.Context) cdpwebauthn.AuthenticatorID {
	t.Helper()
	id, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (cdpwebauthn.AuthenticatorID, error) {
		no := false
		if _, err := cdp.Call(ctx, tg, cdpwebauthn.Enable, cdpwebauthn.EnableParams{EnableUI: &no}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, tg, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
			Options: &cdpwebauthn.VirtualAuthenticatorOptions{
				Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
				Transport:      cdpwebauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		return res.AuthenticatorID, err
	})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	return id
}

// credentials returns the passkeys the virtual authenticator holds.
func credentials(t *testing.T, bctx context.Context, id cdpwebauthn.AuthenticatorID) []*cdpwebauthn.Credential {
	t.Helper()
	creds, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) ([]*cdpwebauthn.Credential, error) {
		res, err := cdp.Call(ctx, tg, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: id})
		return res.Credentials, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// waitFor evaluates the JavaScript expression until it is true (errors
// while a page loads are retried) or 15 seconds pass.
func waitFor(bctx context.Context, expr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](expr))
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			return fmt.Errorf("waiting for %s: %w", expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pageSays is the page's passkey message, or its address.
func pageSays(bctx context.Context) string {
	msg, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("#passkey-status") || {}).textContent || location.href`))
	return msg
}

// waitConsole clicks button and waits until the browser shows /console/
// with the second factor proved.
func waitConsole(t *testing.T, bctx context.Context, button string) {
	t.Helper()
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`document.body.dataset.before = "1"`), chromedp.Click(button)); err != nil {
		t.Fatalf("%s: %v", button, err)
	}
	// A fresh page has no data-before mark: the click led somewhere.
	err := waitFor(bctx, `!document.body.dataset.before && location.pathname === "/console/" && (document.querySelector("#mfa") || {}).textContent === "proved"`)
	if err != nil {
		t.Fatalf("%s did not reach the console with MFA: %v (page says %q)", button, err, pageSays(bctx))
	}
}

func signOut(t *testing.T, bctx context.Context) {
	t.Helper()
	if err := chromedp.Do(bctx, chromedp.Click("#signout"), chromedp.WaitVisible("#login")); err != nil {
		t.Fatalf("sign-out: %v", err)
	}
}

// careFacts says practitioner pr-wilson is on patient pt-1's care team.
type careFacts struct{}

func (careFacts) Relationships(_ context.Context, practitioner, patient string) ([]string, error) {
	if practitioner == "pr-wilson" && patient == "pt-1" {
		return []string{"careteam"}, nil
	}
	return nil, nil
}

func (careFacts) Consents(context.Context, string) ([]policy.Consent, error) { return nil, nil }

// TestChromiumPasskey is the acceptance test of passkeys, in headless
// Chromium with a virtual platform authenticator, through the real
// sign-in and console pages:
//   - a physician (a role that needs MFA) who gives only the password gets
//     a session without MFA, which the default policies deny patient data;
//   - from that session they register a passkey (the session is raised to
//     MFA, as after enrolling TOTP), and sign out;
//   - password then passkey (second factor) reaches the console with MFA;
//   - the passkey alone (passwordless, discoverable credential) reaches
//     the console with MFA, and the policies allow patient data;
//   - a passkey step-up with the password opens break-the-glass;
//   - a copy of the passkey whose signature counter went backwards (a
//     cloned authenticator) is refused, and the audit log says why.
func TestChromiumPasskey(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; run without -short")
	}
	browsertest.Need(t)
	s := newPasskeyStack(t)
	ctx := context.Background()
	const user, pw = "dr.wilson", "amber kites over oslo 77"
	if err := s.dir.Create(ctx, account.Account{ID: user, Name: "Dr Wilson", Roles: []string{"physician"}, Practitioner: "pr-wilson"}, pw, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.dir.RecordTraining(ctx, user, account.Training{Course: "hipaa", Completed: now.Add(-time.Hour), Expires: now.AddDate(1, 0, 0)}, "test"); err != nil {
		t.Fatal(err)
	}
	engine, err := policy.NewEngine(policy.DefaultPolicies(), careFacts{})
	if err != nil {
		t.Fatal(err)
	}
	readChart := func(p policy.Principal) policy.Decision {
		return engine.Decide(ctx, policy.Request{Principal: p, Action: policy.Read, Type: "Observation", ID: "obs-1", Patient: "pt-1", Purpose: "treatment"})
	}
	bctx := browsertest.Context(t, 60*time.Second)
	if err := chromedp.Do(bctx, chromedp.Navigate(s.url+"/login"), chromedp.WaitVisible("#user")); err != nil {
		t.Fatal(err)
	}
	auth := virtualAuthenticator(t, bctx)

	// 1. Password only: no MFA, no patient data.
	err = chromedp.Do(bctx, chromedp.SendKeys("#user", user), chromedp.SendKeys("#password", pw), chromedp.Click("#submit"),
		chromedp.WaitVisible("#enrol"))
	if err != nil {
		t.Fatalf("password sign-in: %v", err)
	}
	p, ok := s.principal(t, bctx)
	if !ok || p.UserID != user || p.MFA {
		t.Fatalf("after the password alone: principal %+v (ok %v), want %s without MFA", p, ok, user)
	}
	if d := readChart(p); d.Allow || !slices.Contains(d.Policies, "mfa-required") {
		t.Fatalf("password-only session reading a chart: %+v, want a denial by mfa-required", d)
	}

	// 2. Register a passkey from the console.
	if err := chromedp.Do(bctx, chromedp.Navigate(s.url+"/console/"), chromedp.WaitVisible("#passkey-register")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitConsole(t, bctx, "#passkey-register")
	t.Logf("passkey registration in Chromium took %v", time.Since(start).Round(time.Millisecond))
	creds := credentials(t, bctx, auth)
	if len(creds) != 1 || !creds[0].IsResidentCredential {
		t.Fatalf("authenticator holds %d credentials (resident %v), want 1 resident", len(creds), len(creds) == 1 && creds[0].IsResidentCredential)
	}
	if m, err := s.dir.MFA(ctx, user); err != nil || len(m.Passkeys) != 1 {
		t.Fatalf("stored passkeys: %d, %v; want 1", len(m.Passkeys), err)
	}
	signOut(t, bctx)

	// 3. Password, then the passkey as second factor.
	err = chromedp.Do(bctx, chromedp.SendKeys("#user", user), chromedp.SendKeys("#password", pw), chromedp.Click("#submit"),
		chromedp.WaitVisible("#second"), chromedp.WaitVisible("#passkey-login"))
	if err != nil {
		t.Fatalf("password before the passkey: %v", err)
	}
	waitConsole(t, bctx, "#passkey-login")
	if p, _ := s.principal(t, bctx); !p.MFA || p.Method != "password+passkey" {
		t.Errorf("password+passkey principal: MFA %v method %q", p.MFA, p.Method)
	}
	signOut(t, bctx)

	// 4. The passkey alone.
	start = time.Now()
	waitConsole(t, bctx, "#passkey-login")
	t.Logf("passwordless sign-in in Chromium took %v", time.Since(start).Round(time.Millisecond))
	p, ok = s.principal(t, bctx)
	if !ok || p.UserID != user || !p.MFA || p.Method != "passkey" {
		t.Fatalf("passwordless principal %+v (ok %v), want %s with MFA by passkey", p, ok, user)
	}
	if d := readChart(p); !d.Allow {
		t.Errorf("passkey session reading a chart on the care team: %+v, want allowed", d)
	}

	// 5. Break the glass with the password and a passkey step-up.
	err = chromedp.Do(bctx, chromedp.Navigate(s.url+"/breakglass"), chromedp.WaitVisible("#passkey-stepup"),
		chromedp.SetValue("#category", "emergency-treatment"), chromedp.SendKeys("#reason", "unconscious patient in the ED"),
		chromedp.SendKeys("#password", pw), chromedp.Click("#passkey-stepup"))
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(bctx, `document.querySelector("#passkey-stepup").dataset.confirmed === "true"`); err != nil {
		t.Fatalf("passkey step-up: %v (page says %q)", err, pageSays(bctx))
	}
	if err := chromedp.Do(bctx, chromedp.Click("#submit")); err != nil {
		t.Fatal(err)
	}
	// The new page's address is set before its body is parsed: wait for
	// the console to finish loading before reading it.
	if err := waitFor(bctx, `(location.pathname === "/console/" && document.readyState === "complete") || document.querySelector("#error") !== null`); err != nil {
		t.Fatal(err)
	}
	if msg, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("#error") || {}).textContent || ""`)); msg != "" {
		t.Fatalf("break-the-glass refused: %s", msg)
	}
	if bg, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#breakglass").textContent`)); err != nil || !strings.HasPrefix(bg, "open") {
		t.Errorf("after a passkey step-up the break-the-glass window is %q (%v), want open", bg, err)
	}
	if p, _ := s.principal(t, bctx); !p.BreakGlass.Active(time.Now()) {
		t.Errorf("principal after break-the-glass: %+v", p)
	}
	signOut(t, bctx)

	// 6. A clone: the same key with its counter set back.
	c := credentials(t, bctx, auth)[0]
	_, err = chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		if _, err := cdp.Call(ctx, tg, cdpwebauthn.RemoveCredential, cdpwebauthn.RemoveCredentialParams{AuthenticatorID: auth, CredentialID: c.CredentialID}); err != nil {
			return cdp.Empty{}, err
		}
		// cdproto always sends generateCmtgKeyOnNextOperation, which this
		// authenticator refuses; send only the fields a clone needs.
		type cred struct {
			CredentialID         []byte  `json:"credentialId"`
			IsResidentCredential bool    `json:"isResidentCredential"`
			RpID                 string  `json:"rpId"`
			PrivateKey           []byte  `json:"privateKey"`
			UserHandle           []byte  `json:"userHandle"`
			SignCount            float64 `json:"signCount"`
		}
		type params struct {
			AuthenticatorID cdpwebauthn.AuthenticatorID `json:"authenticatorId"`
			Credential      cred                        `json:"credential"`
		}
		add := cdp.Command[params, cdp.Empty]{Method: cdpwebauthn.CommandAddCredential}
		return cdp.Call(ctx, tg, add, params{auth, cred{c.CredentialID, true, "localhost", c.PrivateKey, c.UserHandle, 0}})
	})
	if err != nil {
		t.Fatalf("resetting the counter: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Click("#passkey-login")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(bctx, `((document.querySelector("#passkey-status") || {}).textContent || "").includes("cloned")`); err != nil {
		t.Fatalf("cloned passkey: %v (page says %q)", err, pageSays(bctx))
	}
	msg := pageSays(bctx)
	if p, ok := s.principal(t, bctx); ok {
		t.Errorf("a cloned passkey signed in: %+v (page says %q)", p, msg)
	}
	if n := s.audited(t, "login-failed", "possible cloned authenticator", user); n != 1 {
		t.Errorf("%d audit events record the refused clone, want 1", n)
	}
}
