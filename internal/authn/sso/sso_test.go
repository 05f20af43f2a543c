package sso

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
)

func user(id, first string, groups []string, amr ...string) *idpUser {
	if amr == nil {
		amr = []string{"pwd"}
	}
	return &idpUser{User: storage.User{ID: id, Username: first + "@example.org", FirstName: first, LastName: "Example", Email: strings.ToLower(first) + "@example.org"}, groups: groups, amr: amr}
}

func testUsers() []*idpUser {
	return []*idpUser{
		user("sub-alice", "alice", []string{"clinicians", "choir"}),
		user("sub-bob", "bob", []string{"volunteers"}),
		user("sub-carol", "carol", []string{"clinicians"}, "pwd", "otp"),
		user("sub-dave", "dave", []string{"it-admins", "clinicians"}),
		user("sub-erin", "erin", []string{"it-admins", "auditors"}, "pwd", "hwk"),
		user("sub-frank", "frank", []string{"clinicians"}),
		user("sub-grace", "grace", []string{"nurses"}),
		user("sub-heidi", "heidi", nil),
	}
}

// lastEvent returns the last audit event.
func (r *rig) lastEvent() audit.Event {
	ev := r.audit.all()
	if len(ev) == 0 {
		r.t.Fatal("no audit event")
	}
	return ev[len(ev)-1]
}

type refusal struct {
	Status int
	Reason string
	User   string
}

// refused checks a refused callback: status, generic page, audit record,
// no session started.
func (r *rig) refused(resp *http.Response, body string, sessionsBefore int, want refusal) {
	r.t.Helper()
	ev := r.lastEvent()
	got := refusal{Status: resp.StatusCode, Reason: strings.TrimPrefix(ev.OutcomeDesc, "single sign-on refused: "), User: ev.UserID}
	if diff := cmp.Diff(want, got); diff != "" {
		r.t.Errorf("refusal (-want +got):\n%s", diff)
	}
	wantOutcome := audit.MinorFailure
	if want.Status >= 500 {
		wantOutcome = audit.SeriousFail
	}
	if ev.Interaction != "login-failed" || ev.Outcome != wantOutcome || ev.Allowed {
		r.t.Errorf("audit event = %s/%s allowed=%v, want login-failed/%s denied", ev.Interaction, ev.Outcome, ev.Allowed, wantOutcome)
	}
	if !strings.Contains(body, "Sign-in failed") || strings.Contains(body, "eyJ") {
		r.t.Errorf("error page is not the generic one: %q", body)
	}
	if n := len(r.sessions.all()); n != sessionsBefore {
		r.t.Errorf("a refused login started a session (%d sessions, want %d)", n, sessionsBefore)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "sid" {
			r.t.Error("a refused login set a session cookie")
		}
	}
}

func TestLoginThroughProvider(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	iss := r.idp.srv.URL
	tests := []struct {
		username string
		sub      string
		want     account.Account
		mfa      bool
	}{
		{"alice@example.org", "sub-alice", account.Account{Name: "alice Example", Roles: []string{"physician"}}, false},
		{"carol@example.org", "sub-carol", account.Account{Name: "carol Example", Roles: []string{"physician"}}, true},
		{"erin@example.org", "sub-erin", account.Account{Name: "erin Example", Roles: []string{"administrator", "auditor"}}, true},
		{"grace@example.org", "sub-grace", account.Account{Name: "grace Example", Roles: []string{"nurse"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.sub, func(t *testing.T) {
			r.t = t
			resp, _ := r.browser().login(tc.username)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
				t.Fatalf("callback = %d to %q, want 302 to /console/", resp.StatusCode, resp.Header.Get("Location"))
			}
			id := AccountID(iss, tc.sub)
			got, err := r.accounts.Get(t.Context(), id)
			if err != nil {
				t.Fatalf("no account %s: %v", id, err)
			}
			tc.want.ID = id
			if diff := cmp.Diff(tc.want, got, cmpIgnoreCreated); diff != "" {
				t.Errorf("account (-want +got):\n%s", diff)
			}
			s := r.sessions.all()
			if diff := cmp.Diff(session{User: id, Method: "sso", MFA: tc.mfa}, s[len(s)-1]); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
			ev := r.lastEvent()
			wantMethod := map[bool]string{false: "sso", true: "sso+mfa"}[tc.mfa]
			if ev.Interaction != "login" || ev.Outcome != audit.Success || ev.UserID != id || ev.AuthMethod != wantMethod || !cmp.Equal(ev.Roles, tc.want.Roles) {
				t.Errorf("audit event = %+v", ev)
			}
		})
	}
}

var cmpIgnoreCreated = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Created" }, cmp.Ignore())

func TestRolesFollowProvider(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	id := AccountID(r.idp.srv.URL, "sub-frank")
	steps := []struct {
		groups    []string
		status    int
		wantRoles []string
	}{
		{[]string{"clinicians"}, http.StatusFound, []string{"physician"}},
		{[]string{"nurses", "unrelated"}, http.StatusFound, []string{"nurse"}},
		{[]string{"nurses", "auditors"}, http.StatusFound, []string{"auditor", "nurse"}},
		{[]string{"volunteers"}, http.StatusForbidden, nil}, // no longer granted anything: roles cleared
	}
	for i, s := range steps {
		r.idp.users.setGroups("sub-frank", s.groups)
		resp, _ := r.browser().login("frank@example.org")
		a, err := r.accounts.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != s.status || !cmp.Equal(a.Roles, s.wantRoles) {
			t.Errorf("step %d (groups %v): status %d roles %v, want %d %v", i, s.groups, resp.StatusCode, a.Roles, s.status, s.wantRoles)
		}
	}
}

func TestRefusedUsers(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	iss := r.idp.srv.URL
	disabled := AccountID(iss, "sub-frank")
	r.accounts.CreateExternal(t.Context(), account.Account{ID: disabled, Roles: []string{"physician"}, Disabled: true}, "test")
	tests := []struct {
		name, username string
		want           refusal
	}{
		{"no mapped group", "bob@example.org", refusal{http.StatusForbidden, "no-mapped-role", AccountID(iss, "sub-bob")}},
		{"no groups claim", "heidi@example.org", refusal{http.StatusForbidden, "no-mapped-role", AccountID(iss, "sub-heidi")}},
		{"administrator with a patient-data role", "dave@example.org", refusal{http.StatusForbidden, "role-conflict", AccountID(iss, "sub-dave")}},
		{"disabled phivault account", "frank@example.org", refusal{http.StatusForbidden, "disabled", disabled}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			before := len(r.sessions.all())
			resp, body := r.browser().login(tc.username)
			r.refused(resp, body, before, tc.want)
			a, err := r.accounts.Get(t.Context(), tc.want.User)
			if tc.want.Reason == "disabled" {
				if err != nil || !a.Disabled || !cmp.Equal(a.Roles, []string{"physician"}) {
					t.Errorf("disabled account changed: %+v %v", a, err)
				}
			} else if err == nil {
				t.Errorf("a refused user got an account: %+v", a)
			}
		})
	}
}

func TestForgedState(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	signer := newCookieSigner(testCookieKey)
	other := newCookieSigner(make([]byte, 32))
	b := r.browser()
	cb := b.authorize("alice@example.org", "")
	cookie := b.loginCookie()
	st, err := signer.parse(cookie, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	withState := func(s string) string {
		u, _ := url.Parse(cb)
		q := u.Query()
		q.Set("state", s)
		u.RawQuery = q.Encode()
		return u.String()
	}
	expired := st
	expired.Expires = time.Now().Add(-time.Second).Unix()
	payload, sig, _ := strings.Cut(cookie, ".")
	altered, _, _ := strings.Cut(signer.seal(loginState{State: st.State, Nonce: "x", Verifier: st.Verifier, Expires: st.Expires, Next: "/"}), ".")
	tests := []struct {
		name, callback, cookie string
	}{
		{"no cookie", cb, ""},
		{"state differs from cookie", withState("forged"), cookie},
		{"no state", withState(""), cookie},
		{"cookie signed with another key", cb, other.seal(st)},
		{"cookie payload altered", cb, altered + "." + sig},
		{"cookie unsigned", cb, payload},
		{"cookie expired", cb, signer.seal(expired)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			resp, body := b.deliver(tc.callback, tc.cookie)
			r.refused(resp, body, 0, refusal{http.StatusBadRequest, "state", ""})
		})
	}
	// None of the forgeries spent the genuine login.
	r.t = t
	if resp, _ := b.deliver(cb, cookie); resp.StatusCode != http.StatusFound {
		t.Errorf("genuine callback after forgeries = %d, want 302", resp.StatusCode)
	}
}

func TestReplayedCallback(t *testing.T) {
	r := newRig(t, testUsers()...)
	tap := r.tap()
	r.mount(r.handler("phivault", tap))
	b := r.browser()
	cb := b.authorize("alice@example.org", "")
	cookie := b.loginCookie()
	if resp, _ := b.deliver(cb, cookie); resp.StatusCode != http.StatusFound {
		t.Fatalf("first callback = %d", resp.StatusCode)
	}
	// Same node: refused before the provider is asked.
	resp, body := b.deliver(cb, cookie)
	r.refused(resp, body, 1, refusal{http.StatusBadRequest, "replay", ""})
	// Another node (no memory of the state): the provider refuses the spent code.
	r.mount(r.handler("phivault", tap))
	resp, body = b.deliver(cb, cookie)
	r.refused(resp, body, 1, refusal{http.StatusBadRequest, "code-exchange", ""})
}

func TestInjectedIDToken(t *testing.T) {
	r := newRig(t, testUsers()...)
	tap := r.tap()

	// A genuine token response from another provider (same client id).
	r2 := newRig(t, testUsers()...)
	tap2 := r2.tap()
	r2.mount(r2.handler("phivault", tap2))
	if resp, _ := r2.browser().login("alice@example.org"); resp.StatusCode != http.StatusFound {
		t.Fatalf("login at the other provider = %d", resp.StatusCode)
	}
	otherIssuer := tap2.lastResponse()

	// A genuine token response for another client of the same provider.
	r.mount(r.handler("other", tap))
	if resp, _ := r.browser().login("alice@example.org"); resp.StatusCode != http.StatusFound {
		t.Fatalf("login at the other client = %d", resp.StatusCode)
	}
	otherAudience := tap.lastResponse()

	// A genuine token response for phivault, from an earlier login (other nonce).
	r.mount(r.handler("phivault", tap))
	if resp, _ := r.browser().login("alice@example.org"); resp.StatusCode != http.StatusFound {
		t.Fatalf("login = %d", resp.StatusCode)
	}
	earlier := tap.lastResponse()
	sessions := len(r.sessions.all())

	tests := []struct {
		name   string
		inject []byte
		want   refusal
	}{
		{"ID token for another audience", otherAudience, refusal{http.StatusForbidden, "token", ""}},
		{"ID token with another login's nonce", earlier, refusal{http.StatusForbidden, "nonce", ""}},
		{"ID token from another provider", otherIssuer, refusal{http.StatusForbidden, "token", ""}},
		{"no ID token", []byte(`{"access_token":"a","token_type":"Bearer","expires_in":60}`), refusal{http.StatusBadGateway, "token", ""}},
		{"ID token not a JWT", []byte(`{"access_token":"a","token_type":"Bearer","id_token":"not.a.jwt"}`), refusal{http.StatusForbidden, "token", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			tap.inject(tc.inject)
			defer tap.inject(nil)
			resp, body := r.browser().login("alice@example.org")
			r.refused(resp, body, sessions, tc.want)
		})
	}
}

func TestAuditUnavailableNoSession(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	r.audit.fail = true
	resp, body := r.browser().login("alice@example.org")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unavailable") {
		t.Errorf("login with audit down = %d, want 503 and the generic page", resp.StatusCode)
	}
	if n := len(r.sessions.all()); n != 0 {
		t.Errorf("a login that could not be audited started %d sessions", n)
	}
}

func TestLandingAfterLogin(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	tests := []struct{ next, want string }{
		{"", "/console/"},
		{"?next=%2Fconsole%2Fusers%3Fpage%3D2", "/console/users?page=2"},
		{"?next=%2F%2Fevil.example%2F", "/console/"},
		{"?next=https%3A%2F%2Fevil.example%2F", "/console/"},
	}
	for _, tc := range tests {
		b := r.browser()
		cb := b.authorize("alice@example.org", tc.next)
		resp, _ := b.deliver(cb, b.loginCookie())
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != tc.want {
			t.Errorf("next %q: %d to %q, want 302 to %q", tc.next, resp.StatusCode, got, tc.want)
		}
	}
}

func TestLoginCookieAttributes(t *testing.T) {
	r := newRig(t, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	c := &http.Client{Transport: r.idp.srv.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(r.rp.URL + "/sso/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), r.idp.srv.URL) ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" ||
		q.Get("client_id") != "phivault" || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("login redirect = %d %s", resp.StatusCode, loc)
	}
	var lc *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == cookieName {
			lc = x
		}
	}
	if lc == nil || !lc.HttpOnly || !lc.Secure || lc.SameSite != http.SameSiteLaxMode || lc.Path != "/" || lc.MaxAge <= 0 || lc.MaxAge > 600 {
		t.Fatalf("login cookie = %+v", lc)
	}
	if strings.Contains(lc.Value, q.Get("code_challenge")) {
		t.Error("cookie holds the challenge instead of the verifier")
	}
}

// TestNoTokensLeak: after logins and refusals, neither the log nor the
// audit records hold a code, a token or the client secret.
func TestNoTokensLeak(t *testing.T) {
	r := newRig(t, testUsers()...)
	tap := r.tap()
	r.mount(r.handler("phivault", tap))
	var codes []string
	for _, u := range []string{"alice@example.org", "bob@example.org", "dave@example.org"} {
		b := r.browser()
		cb := b.authorize(u, "")
		cu, _ := url.Parse(cb)
		codes = append(codes, cu.Query().Get("code"))
		b.deliver(cb, b.loginCookie())
		b.deliver(cb, b.loginCookie()) // replay: refused and logged
	}
	tap.inject([]byte(`{"access_token":"a","token_type":"Bearer","id_token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}`))
	r.browser().login("alice@example.org")
	var records strings.Builder
	for _, e := range r.audit.all() {
		fmt.Fprintf(&records, "%+v\n", e)
	}
	for where, text := range map[string]string{"log": r.logText(), "audit": records.String()} {
		for _, secret := range append(codes, "eyJ", "secret-phivault") {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("%s contains %q:\n%s", where, secret, text)
			}
		}
	}
	if !strings.Contains(r.logText(), "login refused") {
		t.Error("refusals were not logged")
	}
}

func TestExpiredIDToken(t *testing.T) {
	r := newRig(t, testUsers()...)
	h := r.handler("phivault", r.tap())
	// phivault's clock is two hours ahead: its own cookie is fresh, the
	// provider's one-hour ID token is not.
	h.deps.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	r.mount(h)
	resp, body := r.browser().login("alice@example.org")
	r.refused(resp, body, 0, refusal{http.StatusForbidden, "token", ""})
	if !strings.Contains(r.logText(), "ID token expired") {
		t.Errorf("log does not say why: %s", r.logText())
	}
}

// BenchmarkLogin measures a whole login: /sso/login, the provider's login
// form, the callback (code exchange, ID token verification, account and
// session), all over TLS on loopback.
func BenchmarkLogin(b *testing.B) {
	r := newRig(b, testUsers()...)
	r.mount(r.handler("phivault", r.tap()))
	for b.Loop() {
		if resp, _ := r.browser().login("alice@example.org"); resp.StatusCode != http.StatusFound {
			b.Fatalf("login = %d", resp.StatusCode)
		}
	}
}
