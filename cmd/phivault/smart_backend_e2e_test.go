package main

// Acceptance 4 of issue 6, backend services against the running server:
// a backend client registered with 'phivault client add --type backend'
// gets a token with an ES384 client assertion and submits an
// Observation; the token reaches nothing else, and every forged,
// stale, replayed or over-reaching assertion gets an OAuth error and no
// token.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// backendApp is a registered backend client and its private key.
type backendApp struct {
	s   *liveServer
	id  string
	kid string
	key *ecdsa.PrivateKey
}

// claims are a valid assertion's claims, changed by tweak.
func (a backendApp) claims(tweak func(*jwt.Claims)) jwt.Claims {
	c := jwt.Claims{Issuer: a.id, Subject: a.id, Audience: jwt.Audience{a.s.base + "/oauth/token"},
		Expiry: jwt.NewNumericDate(time.Now().Add(4 * time.Minute)), ID: rand.Text()}
	if tweak != nil {
		tweak(&c)
	}
	return c
}

func (a backendApp) sign(t *testing.T, alg jose.SignatureAlgorithm, key any, c jwt.Claims) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: a.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(sg).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// request posts a client_credentials request and returns status and the
// JSON answer.
func (a backendApp) request(t *testing.T, assertion, scope string) (int, map[string]any) {
	t.Helper()
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}, "client_assertion_type": {assertionType}, "client_assertion": {assertion}}
	resp, err := a.s.tls.PostForm(a.s.base+"/oauth/token", f)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestSMARTBackendServicesEndToEnd(t *testing.T) {
	s := startServe(t)
	seedClinic(t, s)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := backendApp{s: s, kid: "lab-feed-1", key: key}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: a.kid, Algorithm: "ES384", Use: "sig"}}})
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	out := cliIn(t, "", "client", "add", "--data", s.dir, "--name", "Lab feed", "--type", "backend", "--role", "device",
		"--jwks", jwks, "--scope", "system/Observation.cs")
	id, ok := strings.CutPrefix(strings.TrimSpace(out), "client_id: ")
	if !ok || strings.Contains(out, "secret") {
		t.Fatalf("client add: %q", out)
	}
	a.id = id

	replayed := a.sign(t, jose.ES384, key, a.claims(nil))
	st, body := a.request(t, replayed, "system/Observation.cs")
	tok, _ := body["access_token"].(string)
	if st != http.StatusOK || tok == "" || body["token_type"] != "Bearer" || body["scope"] != "system/Observation.cs" || body["refresh_token"] != nil {
		t.Fatalf("backend token: %d %v", st, body)
	}
	obs, _ := json.Marshal(map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "glucose"}, "subject": map[string]any{"reference": "Patient/pat-a"}})
	if st, body := s.fhir(t, http.MethodPost, "Observation", tok, obs); st != http.StatusCreated {
		t.Fatalf("the device's POST Observation: %d %.300s", st, body)
	}
	for _, rel := range []string{"Patient/pat-a", "Observation/obs-a", "Condition/cond-a"} {
		if st, _ := s.fhir(t, http.MethodGet, rel, tok, nil); st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("the device's token read %s: %d; want 403", rel, st)
		}
	}

	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: key.Public(), KeyID: a.kid})
	none := func() string {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + a.kid + `"}`))
		c, _ := json.Marshal(a.claims(nil))
		return hdr + "." + base64.RawURLEncoding.EncodeToString(c) + "."
	}
	tests := []struct {
		name, assertion, scope string
		status                 int
		err                    string
	}{
		{"wrong audience (the FHIR base)", a.sign(t, jose.ES384, key, a.claims(func(c *jwt.Claims) { c.Audience = jwt.Audience{s.base + "/fhir"} })), "", 401, "invalid_client"},
		{"wrong audience (another server)", a.sign(t, jose.ES384, key, a.claims(func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://other.example/oauth/token"} })), "", 401, "invalid_client"},
		{"expired", a.sign(t, jose.ES384, key, a.claims(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })), "", 401, "invalid_client"},
		{"replayed jti", replayed, "", 401, "invalid_client"},
		{"alg none", none(), "", 401, "invalid_client"},
		{"HS256 keyed with the PEM public key", a.sign(t, jose.HS256, pubPEM, a.claims(nil)), "", 401, "invalid_client"},
		{"HS256 keyed with the JWK", a.sign(t, jose.HS256, jwk, a.claims(nil)), "", 401, "invalid_client"},
		{"scope escalation system/*.cruds", a.sign(t, jose.ES384, key, a.claims(nil)), "system/*.cruds", 400, "invalid_scope"},
		{"scope escalation system/Patient.r", a.sign(t, jose.ES384, key, a.claims(nil)), "system/Patient.r", 400, "invalid_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scope := tc.scope
			if scope == "" {
				scope = "system/Observation.cs"
			}
			st, body := a.request(t, tc.assertion, scope)
			if st != tc.status || body["error"] != tc.err || body["access_token"] != nil {
				t.Fatalf("%d %v; want %d %s and no token", st, body, tc.status, tc.err)
			}
		})
	}

	// Removing the client ('phivault client remove', through the admin
	// socket) ends its tokens at the very next request, and its key gets
	// no new ones.
	cliIn(t, "", "client", "remove", "--data", s.dir, a.id)
	if st, _ := s.fhir(t, http.MethodPost, "Observation", tok, obs); st != http.StatusUnauthorized {
		t.Errorf("the next request with a removed client's token: %d; want 401", st)
	}
	if st, body := a.request(t, a.sign(t, jose.ES384, key, a.claims(nil)), "system/Observation.cs"); st != http.StatusUnauthorized || body["access_token"] != nil {
		t.Errorf("a removed client's assertion: %d %v; want 401 and no token", st, body)
	}
}
