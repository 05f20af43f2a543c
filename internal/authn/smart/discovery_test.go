package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/phivault/phivault/internal/store"
)

func TestDiscovery(t *testing.T) {
	h := newHarness(t)
	resp, err := h.ts.Client().Get(h.base + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("browser apps cannot read the discovery document (no CORS)")
	}
	req, _ := http.NewRequest("OPTIONS", h.ts.URL+"/oauth/token", nil)
	pre, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "*" || pre.Header.Get("Access-Control-Allow-Headers") == "" {
		t.Errorf("token endpoint preflight: %d %v", pre.StatusCode, pre.Header)
	}
	var c map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"issuer": h.ts.URL, "token_endpoint": h.ts.URL + "/oauth/token", "authorization_endpoint": h.ts.URL + "/oauth/authorize",
		"jwks_uri": h.ts.URL + "/oauth/jwks", "revocation_endpoint": h.ts.URL + "/oauth/revoke", "introspection_endpoint": h.ts.URL + "/oauth/introspect",
		"code_challenge_methods_supported":                 []any{"S256"},
		"response_types_supported":                         []any{"code"},
		"token_endpoint_auth_signing_alg_values_supported": []any{"RS384", "ES384"},
	} {
		if !cmp.Equal(c[k], want) {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	caps, _ := c["capabilities"].([]any)
	for _, want := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
		"context-ehr-patient", "context-standalone-patient", "permission-offline", "permission-patient", "permission-user", "permission-v1", "permission-v2",
		"sso-openid-connect", "authorize-post"} {
		if !slices.Contains(caps, any(want)) {
			t.Errorf("capability %s missing", want)
		}
	}
	methods, _ := c["token_endpoint_auth_methods_supported"].([]any)
	if !slices.Contains(methods, any("private_key_jwt")) {
		t.Errorf("auth methods %v", methods)
	}
}

func TestLaunchEndpoint(t *testing.T) {
	h := newHarness(t)
	post := func(session, ctype, origin, body string) int {
		req, _ := http.NewRequest("POST", h.ts.URL+"/oauth/launch", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := h.browser(t, session).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, session, ctype, origin, body string
		want                               int
	}{
		{"clinician", "s-dr", "application/json", "", `{"patient":"p1"}`, 200},
		{"same origin", "s-dr", "application/json", h.ts.URL, `{"patient":"p1"}`, 200},
		{"signed out", "", "application/json", "", `{"patient":"p1"}`, 401},
		{"cross-site form", "s-dr", "application/x-www-form-urlencoded", "", `patient=p1`, 415},
		{"cross-origin", "s-dr", "application/json", "https://evil.example", `{"patient":"p1"}`, 403},
		{"bad patient id", "s-dr", "application/json", "", `{"patient":"../x"}`, 400},
		{"unknown field", "s-dr", "application/json", "", `{"patient":"p1","user":"x"}`, 400},
		{"patient for someone else", "s-pat", "application/json", "", `{"patient":"p1"}`, 400},
		{"patient for self", "s-pat", "application/json", "", `{"patient":"p42"}`, 200},
	}
	for _, tc := range tests {
		if got := post(tc.session, tc.ctype, tc.origin, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	// A launch expires after 5 minutes.
	id, err := h.srv.NewLaunch(context.Background(), h.login.users["s-dr"], "p1")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := h.addClient(t, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: []string{"launch", "patient/*.rs"}})
	h.clock.Add(launchTTL + time.Second)
	v := oauth2.GenerateVerifier()
	u := h.oauthConfig(app, "launch patient/*.rs").AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base), oauth2.SetAuthURLParam("launch", id))
	if e := h.refusal(t, "s-dr", u); e != "invalid_request" {
		t.Errorf("expired launch: error %q", e)
	}
}

// TestStoreHoldsNoSecrets: codes, refresh tokens, client secrets and
// launch ids never appear in store keys or values.
func TestStoreHoldsNoSecrets(t *testing.T) {
	h := newHarness(t)
	scope := "launch/patient patient/*.rs offline_access openid fhirUser"
	app, secret := h.addClient(t, Client{Name: "Portal", Type: Confidential, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	cfg := h.oauthConfig(app, scope)
	cfg.ClientSecret = secret.Reveal()
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	launch, _ := h.srv.NewLaunch(context.Background(), h.login.users["s-dr"], "p1")
	v := oauth2.GenerateVerifier()
	back := h.approve(t, "s-pat", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base)), nil)
	code := back.Query().Get("code")
	tok, err := cfg.Exchange(h.ctx(), code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	var kvs []store.KV
	h.srv.v.st.View(context.Background(), func(r store.Reader) error {
		kvs, err = r.MetaPrefix("")
		return err
	})
	secrets := map[string]string{"code": code, "refresh token": tok.RefreshToken, "client secret": secret.Reveal(), "launch": launch,
		"user id": "pat.jones", "patient id": "p42\""}
	for _, kv := range kvs {
		for name, s := range secrets {
			if strings.Contains(kv.Key, s) || strings.Contains(string(kv.Value), s) {
				t.Errorf("the %s is in store meta %q", name, kv.Key)
			}
		}
	}
	if len(kvs) < 5 {
		t.Fatalf("only %d meta records; the test looked at nothing", len(kvs))
	}
}

func TestClientValidation(t *testing.T) {
	h := newHarness(t)
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), Algorithm: "ES384"}}})
	if _, _, err := h.srv.Clients().Add(context.Background(), Client{Name: "ok", Type: Backend, Role: "device", JWKS: ec, Scopes: []string{"system/*.rs"}}); err != nil {
		t.Fatalf("a valid backend client was refused: %v", err)
	}
	tests := []struct {
		name string
		c    Client
	}{
		{"no name", Client{Type: Public, RedirectURIs: []string{appRedirect}, Scopes: []string{"openid"}}},
		{"unknown type", Client{Name: "x", Type: "trusted", RedirectURIs: []string{appRedirect}, Scopes: []string{"openid"}}},
		{"http redirect", Client{Name: "x", Type: Public, RedirectURIs: []string{"http://app.example/cb"}, Scopes: []string{"openid"}}},
		{"redirect with fragment", Client{Name: "x", Type: Public, RedirectURIs: []string{appRedirect + "#f"}, Scopes: []string{"openid"}}},
		{"no redirect", Client{Name: "x", Type: Public, Scopes: []string{"openid"}}},
		{"app with system scope", Client{Name: "x", Type: Confidential, RedirectURIs: []string{appRedirect}, Scopes: []string{"system/*.rs"}}},
		{"backend with user scope", Client{Name: "x", Type: Backend, Role: "device", JWKS: ec, Scopes: []string{"user/*.rs"}}},
		{"backend without keys", Client{Name: "x", Type: Backend, Role: "device", Scopes: []string{"system/*.rs"}}},
		{"backend as administrator", Client{Name: "x", Type: Backend, Role: "administrator", JWKS: ec, Scopes: []string{"system/*.rs"}}},
		{"backend with a symmetric key", Client{Name: "x", Type: Backend, Role: "device", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), Scopes: []string{"system/*.rs"}}},
		{"bad scope", Client{Name: "x", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: []string{"patient/*.everything"}}},
	}
	for _, tc := range tests {
		if _, _, err := h.srv.Clients().Add(context.Background(), tc.c); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if l, _ := h.srv.Clients().List(context.Background()); len(l) != 1 {
		t.Errorf("refused clients were stored: %d", len(l))
	}
	// A private key in the JWKS is refused (it must never be stored).
	_, key := backendClient(t, h)
	priv, _ := json.Marshal(map[string]any{"keys": []any{jsonKey(key)}})
	if _, _, err := h.srv.Clients().Add(context.Background(), Client{Name: "x", Type: Backend, Role: "device", JWKS: priv, Scopes: []string{"system/*.rs"}}); err == nil {
		t.Error("a private key was registered")
	}
}

func jsonKey(k any) json.RawMessage {
	b, _ := json.Marshal(jose.JSONWebKey{Key: k})
	return b
}
