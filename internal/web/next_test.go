package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A sign-in asked for by another page (an OAuth authorization request)
// returns there once the second factor is given, and only to a path on
// this server.
func TestSignInReturnsToNext(t *testing.T) {
	e := newEnv(t)
	e.mux.Handle("GET /oauth/authorize", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("authorize")) }))
	b := e.browser(t)
	b.get("/login?next=" + url.QueryEscape("/oauth/authorize?client_id=app&state=x"))
	b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}})
	if b.path != "/login/totp" {
		t.Fatalf("after password: %s", b.path)
	}
	b.post("/login/totp", url.Values{"code": {e.code(t, aliceSecret, 0)}})
	if b.path != "/oauth/authorize" || b.body != "authorize" {
		t.Fatalf("after the second factor landed on %s, want /oauth/authorize", b.path)
	}
	if b.get("/console/"); b.path != "/console/" {
		t.Errorf("the console forwarded a second time, to %s", b.path)
	}

	for _, bad := range []string{"https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "console/"} {
		b := e.browser(t)
		b.get("/login?next=" + url.QueryEscape(bad))
		b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}})
		b.post("/login/totp", url.Values{"code": {e.code(t, aliceSecret, 1)}})
		if b.path != "/console/" {
			t.Errorf("next=%q: landed on %s, want /console/", bad, b.path)
		}
		e.clk.Add(30e9)
	}
}

// The sign-in page offers single sign-on only when a provider is set.
func TestLoginOffersSSO(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	if b.get("/login"); strings.Contains(b.body, "sso-login") {
		t.Error("the sign-in page offers SSO with no provider configured")
	}
	e.opts.SSO = "Example <IdP>"
	routes, err := Handler(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	routes["GET /login"].ServeHTTP(rec, getRequest("/login"))
	if body := rec.Body.String(); !strings.Contains(body, `<a href="/sso/login" id="sso-login">Sign in with Example &lt;IdP&gt;</a>`) {
		t.Errorf("sign-in page with SSO:\n%s", body)
	}
}
