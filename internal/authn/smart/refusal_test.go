package smart

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestAuthorizeRefusals(t *testing.T) {
	h := newHarness(t)
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect},
		Scopes: []string{"launch/patient", "patient/*.rs", "user/*.rs", "openid"}})
	v := oauth2.GenerateVerifier()
	good := url.Values{"response_type": {"code"}, "client_id": {app.ID}, "redirect_uri": {appRedirect}, "scope": {"launch/patient patient/*.rs"},
		"state": {"x"}, "aud": {h.base}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}}
	with := func(k, val string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		if val == "" {
			q.Del(k)
		} else {
			q.Set(k, val)
		}
		return q
	}
	tests := []struct {
		name    string
		session string
		q       url.Values
		page    bool   // refused with an error page, never a redirect
		err     string // else: the error sent back to the app
	}{
		{"unregistered redirect URI", "s-pat", with("redirect_uri", "https://evil.example/cb"), true, ""},
		{"redirect URI differing by a slash", "s-pat", with("redirect_uri", appRedirect+"/"), true, ""},
		{"unknown client", "s-pat", with("client_id", "nope"), true, ""},
		{"missing PKCE", "s-pat", with("code_challenge", ""), false, "invalid_request"},
		{"plain PKCE", "s-pat", with("code_challenge_method", "plain"), false, "invalid_request"},
		{"short challenge", "s-pat", with("code_challenge", "abc"), false, "invalid_request"},
		{"wrong audience", "s-pat", with("aud", "https://other.example/fhir"), false, "invalid_request"},
		{"missing audience", "s-pat", with("aud", ""), false, "invalid_request"},
		{"token response type", "s-pat", with("response_type", "token"), false, "unsupported_response_type"},
		{"scope not registered (client escalation)", "s-pat", with("scope", "patient/*.cruds"), false, "invalid_scope"},
		{"system scope", "s-dr", with("scope", "system/*.rs"), false, "invalid_scope"},
		{"patient asks for user scopes (user escalation)", "s-pat", with("scope", "user/*.rs"), false, "invalid_scope"},
		{"malformed scope", "s-pat", with("scope", "patient/*.rsx"), false, "invalid_scope"},
		{"launch scope without launch", "s-dr", with("scope", "launch patient/*.rs"), false, "invalid_scope"},
		{"unknown launch", "s-dr", with("launch", "forged"), false, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.browser(t, tc.session).Get(h.ts.URL + "/oauth/authorize?" + tc.q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if tc.page {
				if resp.StatusCode != http.StatusBadRequest || loc != "" {
					t.Fatalf("status %d Location %q; want an error page and no redirect", resp.StatusCode, loc)
				}
				return
			}
			u, _ := url.Parse(loc)
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, appRedirect+"?") || u.Query().Get("error") != tc.err || u.Query().Get("state") != "x" || u.Query().Has("code") {
				t.Fatalf("status %d Location %q; want error=%s with state and no code", resp.StatusCode, loc, tc.err)
			}
		})
	}

	// The consent form refuses a forged CSRF token and honours a denial.
	resp, _ := h.browser(t, "s-pat").Get(h.ts.URL + "/oauth/authorize?" + good.Encode())
	form := formOf(t, resp)
	form.Set("consent", "approve")
	form.Set("csrf", "forged")
	resp, _ = h.browser(t, "s-pat").PostForm(h.ts.URL+"/oauth/authorize", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
		t.Errorf("forged CSRF: status %d", resp.StatusCode)
	}
	form.Set("csrf", h.srv.csrfToken("s-dr")) // another session's token
	resp, _ = h.browser(t, "s-pat").PostForm(h.ts.URL+"/oauth/authorize", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another session's CSRF token: status %d", resp.StatusCode)
	}
	form.Set("csrf", h.srv.csrfToken("s-pat"))
	form.Set("consent", "deny")
	resp, _ = h.browser(t, "s-pat").PostForm(h.ts.URL+"/oauth/authorize", form)
	resp.Body.Close()
	if u, _ := url.Parse(resp.Header.Get("Location")); u == nil || u.Query().Get("error") != "access_denied" {
		t.Errorf("denial: Location %q", resp.Header.Get("Location"))
	}
	if e := h.audit.last(); e.Interaction != "consent-deny" || e.UserID != "pat.jones" || e.ClientID != app.ID || e.Allowed {
		t.Errorf("denial audit event %+v", e)
	}
	// With the audit log down, an approval hands out no code.
	h.audit.setBroken(true)
	form.Set("consent", "approve")
	resp, _ = h.browser(t, "s-pat").PostForm(h.ts.URL+"/oauth/authorize", form)
	resp.Body.Close()
	if u, _ := url.Parse(resp.Header.Get("Location")); u == nil || u.Query().Has("code") || u.Query().Get("error") != "temporarily_unavailable" {
		t.Errorf("approval with the audit log down: Location %q", resp.Header.Get("Location"))
	}
	h.audit.setBroken(false)
}

func TestTokenRefusals(t *testing.T) {
	h := newHarness(t)
	scope := "launch/patient patient/*.rs offline_access"
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	other, _ := h.addClient(t, Client{Name: "Other", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	cfg := h.oauthConfig(app, scope)
	code := func(v string) string {
		back := h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
		return back.Query().Get("code")
	}
	v := oauth2.GenerateVerifier()
	exchange := func(client, c, redirect, verifier string) (int, map[string]any) {
		return h.post(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {c},
			"redirect_uri": {redirect}, "code_verifier": {verifier}}, nil)
	}
	tests := []struct {
		name string
		run  func() (int, map[string]any)
		want string
	}{
		{"wrong verifier", func() (int, map[string]any) { return exchange(app.ID, code(v), appRedirect, oauth2.GenerateVerifier()) }, "invalid_grant"},
		{"missing verifier", func() (int, map[string]any) { return exchange(app.ID, code(v), appRedirect, "") }, "invalid_grant"},
		{"wrong redirect_uri", func() (int, map[string]any) { return exchange(app.ID, code(v), appRedirect+"x", v) }, "invalid_grant"},
		{"another client's code", func() (int, map[string]any) { return exchange(other.ID, code(v), appRedirect, v) }, "invalid_grant"},
		{"expired code", func() (int, map[string]any) {
			c := code(v)
			h.clock.Add(61 * time.Second)
			return exchange(app.ID, c, appRedirect, v)
		}, "invalid_grant"},
		{"made-up code", func() (int, map[string]any) { return exchange(app.ID, "xyz", appRedirect, v) }, "invalid_grant"},
		{"unknown grant type", func() (int, map[string]any) {
			return h.post(t, "/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {app.ID}}, nil)
		}, "unsupported_grant_type"},
		{"public client asking for client_credentials", func() (int, map[string]any) {
			return h.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ID}}, nil)
		}, "unauthorized_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, body := tc.run()
			if st != http.StatusBadRequest || body["error"] != tc.want || body["access_token"] != nil {
				t.Fatalf("status %d body %v; want 400 %s", st, body, tc.want)
			}
		})
	}
	st, body := exchange("nope", "x", appRedirect, v)
	if st != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("unknown client: %d %v", st, body)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	h := newHarness(t)
	scope := "launch/patient patient/*.rs offline_access"
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	cfg := h.oauthConfig(app, scope)
	v := oauth2.GenerateVerifier()
	back := h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
	tok, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(rt string, extra url.Values) (int, map[string]any) {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.ID}}
		for k, vv := range extra {
			f[k] = vv
		}
		return h.post(t, "/oauth/token", f, nil)
	}
	if st, b := refresh(tok.RefreshToken, url.Values{"scope": {"patient/*.cruds"}}); st != 400 || b["error"] != "invalid_scope" {
		t.Errorf("widening scope on refresh: %d %v", st, b)
	}
	// The refused widening spent the token, like any use: start again.
	back = h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
	tok, _ = cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))

	st, r1 := refresh(tok.RefreshToken, url.Values{"scope": {"patient/Observation.rs offline_access"}})
	rt2, _ := r1["refresh_token"].(string)
	if st != 200 || rt2 == "" || rt2 == tok.RefreshToken || r1["scope"] != "patient/Observation.rs offline_access" || r1["patient"] != "p42" {
		t.Fatalf("first refresh: %d %v", st, r1)
	}
	st, r2 := refresh(rt2, nil)
	rt3, _ := r2["refresh_token"].(string)
	at3, _ := r2["access_token"].(string)
	if st != 200 || rt3 == "" {
		t.Fatalf("second refresh: %d %v", st, r2)
	}
	if _, err := h.srv.Check(at3); err != nil {
		t.Fatal(err)
	}
	// Reusing a rotated token revokes the family: the newest refresh token
	// and the access tokens stop working.
	if st, b := refresh(rt2, nil); st != 400 || b["error"] != "invalid_grant" {
		t.Errorf("reuse: %d %v", st, b)
	}
	if st, b := refresh(rt3, nil); st != 400 || b["error"] != "invalid_grant" {
		t.Errorf("newest token after reuse: %d %v", st, b)
	}
	if _, err := h.srv.Check(at3); err == nil {
		t.Error("an access token of a revoked family still works")
	}
	// The revocation survives a restart.
	h.srv = h.open()
	if _, err := h.srv.Check(at3); err == nil {
		t.Error("a revoked family works again after a restart")
	}
}

func TestCheckRefusesStaleTokens(t *testing.T) {
	h := newHarness(t)
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: []string{"launch/patient", "patient/*.rs"}})
	cfg := h.oauthConfig(app, "launch/patient patient/*.rs")
	issue := func() string {
		v := oauth2.GenerateVerifier()
		back := h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
		tok, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	at := issue()
	h.clock.Add(5*time.Minute + leeway + time.Second)
	if _, err := h.srv.Check(at); err == nil {
		t.Error("an expired token passed")
	}
	at = issue()
	h.accts.bump("pat.jones") // the account's tokens were revoked
	if _, err := h.srv.Check(at); err == nil {
		t.Error("a token of a revoked account epoch passed")
	}
	h.accts.bump("pat.jones")
	at = issue()
	parts := strings.Split(at, ".")
	for name, bad := range map[string]string{
		"tampered payload": parts[0] + "." + parts[1] + "x." + parts[2],
		"no signature":     parts[0] + "." + parts[1] + ".",
		"empty":            "",
		"garbage":          "not.a.jwt",
	} {
		if _, err := h.srv.Check(bad); err == nil {
			t.Errorf("%s passed", name)
		}
	}
	if err := h.srv.Clients().Remove(t.Context(), app.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Check(at); err == nil {
		t.Error("a token of a removed client passed")
	}
}

// TestCrossSiteBounce: a browser arriving from the app's site without the
// (SameSite=Strict) session cookie gets one same-site bounce page, then
// the login redirect; it never loops.
func TestCrossSiteBounce(t *testing.T) {
	h := newHarness(t)
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: []string{"openid"}})
	q := url.Values{"response_type": {"code"}, "client_id": {app.ID}, "redirect_uri": {appRedirect}, "scope": {"openid"},
		"aud": {h.base}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	get := func(u string) *http.Response {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := h.browser(t, "").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(h.ts.URL + "/oauth/authorize?" + q.Encode())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`content="0;url=([^"]+)"`).FindSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("cross-site arrival: %d %s", resp.StatusCode, body)
	}
	next := html.UnescapeString(string(m[1]))
	if !strings.HasPrefix(next, "/oauth/authorize?") || !strings.Contains(next, "client_id="+app.ID) {
		t.Fatalf("bounce to %q", next)
	}
	resp = get(h.ts.URL + next)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Errorf("after the bounce: %d %q; want the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
}
