package smart

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestRevocationAndIntrospection(t *testing.T) {
	h := newHarness(t)
	scope := "launch/patient patient/*.rs offline_access"
	app, secret := h.addClient(t, Client{Name: "Portal", Type: Confidential, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	other, otherSecret := h.addClient(t, Client{Name: "Other", Type: Confidential, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	pub, _ := h.addClient(t, Client{Name: "Public", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	if secret == "" || app.SecretHash == nil || strings.Contains(string(app.SecretHash), secret.Reveal()) {
		t.Fatal("a confidential client gets a secret, kept only as a hash")
	}
	cfg := h.oauthConfig(app, scope)
	cfg.ClientSecret = secret.Reveal()
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	v := oauth2.GenerateVerifier()
	issue := func() *oauth2.Token {
		back := h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
		tok, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mine := []string{app.ID, secret.Reveal()}
	introspect := func(tok string, creds []string) map[string]any {
		st, b := h.post(t, "/oauth/introspect", url.Values{"token": {tok}}, creds)
		if st != 200 {
			t.Fatalf("introspect: %d %v", st, b)
		}
		return b
	}
	tok := issue()
	if b := introspect(tok.AccessToken, mine); b["active"] != true || b["patient"] != "p42" || b["client_id"] != app.ID || b["sub"] != "pat.jones" {
		t.Errorf("own access token: %v", b)
	}
	if b := introspect(tok.RefreshToken, mine); b["active"] != true || b["token_type"] != "refresh_token" {
		t.Errorf("own refresh token: %v", b)
	}
	if b := introspect(tok.AccessToken, []string{other.ID, otherSecret.Reveal()}); b["active"] != false || len(b) != 1 {
		t.Errorf("another client's token: %v", b)
	}
	if b := introspect("garbage", mine); b["active"] != false {
		t.Errorf("garbage: %v", b)
	}
	if st, _ := h.post(t, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, []string{app.ID, "wrong"}); st != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", st)
	}
	if st, _ := h.post(t, "/oauth/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {pub.ID}}, nil); st != http.StatusUnauthorized {
		t.Errorf("public client introspecting: %d", st)
	}
	if st, b := h.post(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {app.ID}}, nil); st != 401 {
		t.Errorf("confidential client without its secret: %d %v", st, b)
	}

	// Another client cannot revoke my token.
	if st, _ := h.post(t, "/oauth/revoke", url.Values{"token": {tok.AccessToken}}, []string{other.ID, otherSecret.Reveal()}); st != 200 {
		t.Errorf("revoke by another client: %d", st)
	}
	if _, err := h.srv.Check(tok.AccessToken); err != nil {
		t.Fatal("another client revoked my token")
	}
	// Revoking the access token (by jti) ends it, and only it.
	if st, _ := h.post(t, "/oauth/revoke", url.Values{"token": {tok.AccessToken}}, mine); st != 200 {
		t.Errorf("revoke: %d", st)
	}
	if _, err := h.srv.Check(tok.AccessToken); err == nil {
		t.Error("a revoked access token passed")
	}
	if b := introspect(tok.AccessToken, mine); b["active"] != false {
		t.Errorf("revoked access token: %v", b)
	}
	if b := introspect(tok.RefreshToken, mine); b["active"] != true {
		t.Errorf("refresh token after revoking the access token: %v", b)
	}
	// Revoking the refresh token ends the family.
	tok2 := issue()
	if st, _ := h.post(t, "/oauth/revoke", url.Values{"token": {tok2.RefreshToken}}, mine); st != 200 {
		t.Errorf("revoke refresh: %d", st)
	}
	if _, err := h.srv.Check(tok2.AccessToken); err == nil {
		t.Error("an access token of a revoked refresh token passed")
	}
	if b := introspect(tok2.RefreshToken, mine); b["active"] != false {
		t.Errorf("revoked refresh token: %v", b)
	}
	if st, b := h.post(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2.RefreshToken}}, mine); st != 400 {
		t.Errorf("revoked refresh token used: %d %v", st, b)
	}
	// Revocations survive a restart.
	h.srv = h.open()
	if _, err := h.srv.Check(tok.AccessToken); err == nil {
		t.Error("a revoked access token works after a restart")
	}
}

func TestKeyRotation(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RotateEvery = time.Hour })
	be, _ := backendClient(t, h)
	first := be.token(t, "system/Observation.rs")
	kids := func() []string {
		var out []string
		for _, k := range h.srv.keys.jwks().Keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	k1 := kids()
	h.clock.Add(time.Hour + time.Second)
	second := be.token(t, "system/Observation.rs")
	k2 := kids()
	if len(k1) != 1 || len(k2) != 2 || k2[0] != k1[0] {
		t.Fatalf("after one period: keys %v then %v; want the old key kept beside the new", k1, k2)
	}
	h.clock.Add(-time.Hour) // (a token signed by the old key just before rotation)
	if _, err := h.srv.Check(first); err != nil {
		t.Errorf("a token of the previous key: %v", err)
	}
	h.clock.Add(2*time.Hour + time.Second)
	be.token(t, "system/Observation.rs")
	k3 := kids()
	if len(k3) != 2 || k3[0] != k2[1] {
		t.Errorf("after two periods: keys %v; want the first key retired", k3)
	}
	_ = second
	// Another node (a reopened server) adopts the keys from the store.
	s2 := h.open()
	if got := len(s2.keys.jwks().Keys); got != 2 {
		t.Errorf("reopened: %d keys", got)
	}
}

// TestSweep: expired state is deleted, live state is kept.
func TestSweep(t *testing.T) {
	h := newHarness(t)
	scope := "launch/patient patient/*.rs online_access"
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	cfg := h.oauthConfig(app, scope)
	v := oauth2.GenerateVerifier()
	back := h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
	tok, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	h.post(t, "/oauth/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {app.ID}}, nil)
	be, _ := backendClient(t, h)
	be.token(t, "system/Observation.rs")
	h.srv.NewLaunch(t.Context(), h.login.users["s-dr"], "p1")

	if n, err := h.srv.Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("a sweep right away deleted %d (%v); everything is live", n, err)
	}
	if _, err := h.srv.Check(tok.AccessToken); err == nil {
		t.Fatal("revoked token passed")
	}
	// online_access: the family lasts 12 access lifetimes (1 hour).
	h.clock.Add(time.Hour + time.Minute)
	n, err := h.srv.Sweep(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// code, refresh token, launch, revocation, assertion jti
	if n != 5 {
		t.Errorf("swept %d records, want 5", n)
	}
	h.srv = h.open()
	if n, _ := h.srv.Sweep(t.Context()); n != 0 {
		t.Errorf("a second sweep found %d more", n)
	}
}

// TestRevocationReachesOtherNodes: two servers over one store (two
// nodes); a revocation on one is honoured by the other within seconds,
// (a restarted node also adopts the stored keys: TestKeyRotation).
func TestRevocationReachesOtherNodes(t *testing.T) {
	h := newHarness(t)
	be, _ := backendClient(t, h)
	nodeA := h.srv
	at := be.token(t, "system/Observation.rs")
	nodeB := h.open() // now serves HTTP
	if _, err := nodeB.Check(at); err != nil {
		t.Fatalf("node B refuses node A's token: %v", err)
	}
	if st, _ := be.h.post(t, "/oauth/revoke", url.Values{"token": {at}, "client_assertion_type": {assertionType}, "client_assertion": {be.assertion(t)}}, nil); st != 200 {
		t.Fatalf("revoke on node B: %d", st)
	}
	if _, err := nodeB.Check(at); err == nil {
		t.Error("node B accepts the token it revoked")
	}
	h.clock.Add(revokedReload + time.Second)
	if _, err := nodeA.Check(at); err == nil {
		t.Error("node A still accepts a token node B revoked")
	}
}
