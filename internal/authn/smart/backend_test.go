package smart

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

// backend is a registered backend client holding its private key.
type backend struct {
	h   *harness
	id  string
	kid string
	key crypto.Signer
	alg jose.SignatureAlgorithm
}

func newBackend(t testing.TB, h *harness, key crypto.Signer, alg jose.SignatureAlgorithm, role string) backend {
	t.Helper()
	kid := randomID(6)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"}}}
	raw, _ := json.Marshal(set)
	c, _ := h.addClient(t, Client{Name: "Lab feed", Type: Backend, Role: role, JWKS: raw, Scopes: []string{"system/Observation.rs", "system/Patient.r"}})
	return backend{h: h, id: c.ID, kid: kid, key: key, alg: alg}
}

func backendClient(t testing.TB, h *harness) (backend, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	return newBackend(t, h, k, jose.ES384, "device"), k
}

type assertionTweak func(c *jwt.Claims)

func (b backend) assertion(t testing.TB, tweaks ...assertionTweak) string {
	t.Helper()
	now := b.h.clock.Now()
	c := jwt.Claims{Issuer: b.id, Subject: b.id, Audience: jwt.Audience{b.h.ts.URL + "/oauth/token"}, Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute)), ID: randomID(12)}
	for _, f := range tweaks {
		f(&c)
	}
	return b.sign(t, b.alg, b.key, c)
}

func (b backend) sign(t testing.TB, alg jose.SignatureAlgorithm, key any, c any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: b.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (b backend) request(t testing.TB, assertion, scope string) (int, map[string]any) {
	return b.h.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {assertionType}, "client_assertion": {assertion}}, nil)
}

func (b backend) token(t testing.TB, scope string) string {
	t.Helper()
	st, body := b.request(t, b.assertion(t), scope)
	at, _ := body["access_token"].(string)
	if st != 200 || at == "" {
		t.Fatalf("backend token: %d %v", st, body)
	}
	return at
}

func TestBackendServices(t *testing.T) {
	h := newHarness(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, b := range []backend{newBackend(t, h, ecKey, jose.ES384, "device"), newBackend(t, h, rsaKey, jose.RS384, "vendor")} {
		t.Run(string(b.alg), func(t *testing.T) {
			st, body := b.request(t, b.assertion(t), "system/Observation.rs")
			if st != 200 || body["token_type"] != "Bearer" || body["scope"] != "system/Observation.rs" || body["refresh_token"] != nil {
				t.Fatalf("%d %v", st, body)
			}
			p, err := h.srv.Check(body["access_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			role := map[jose.SignatureAlgorithm]string{jose.ES384: "device", jose.RS384: "vendor"}[b.alg]
			if p.UserID != b.id || p.ClientID != b.id || !cmp.Equal(p.Roles, []string{role}) || !cmp.Equal(p.Scopes, []string{"system/Observation.rs"}) || p.Method != "smart" {
				t.Errorf("principal %+v", p)
			}
		})
	}
}

func TestBackendAssertionRefusals(t *testing.T) {
	h := newHarness(t)
	b, key := backendClient(t, h)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rb := newBackend(t, h, rsaKey, jose.RS384, "vendor")
	stranger, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rsaDER, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})
	jwkJSON, _ := json.Marshal(jose.JSONWebKey{Key: key.Public(), KeyID: b.kid})
	now := h.clock.Now()
	claims := func(f assertionTweak) jwt.Claims {
		c := jwt.Claims{Issuer: b.id, Subject: b.id, Audience: jwt.Audience{h.ts.URL + "/oauth/token"}, Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute)), ID: randomID(12)}
		if f != nil {
			f(&c)
		}
		return c
	}
	replayed := b.assertion(t)
	if st, _ := b.request(t, replayed, "system/Observation.rs"); st != 200 {
		t.Fatal("the first use of an assertion failed")
	}
	none := func() string {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		body, _ := json.Marshal(claims(nil))
		return hdr + "." + base64.RawURLEncoding.EncodeToString(body) + "."
	}
	tests := []struct {
		name      string
		assertion string
		scope     string
		status    int
		err       string
	}{
		{"wrong audience", b.assertion(t, func(c *jwt.Claims) { c.Audience = jwt.Audience{h.base} }), "", 401, "invalid_client"},
		{"expired", b.assertion(t, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-time.Second)) }), "", 401, "invalid_client"},
		{"exp too far ahead", b.assertion(t, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(10 * time.Minute)) }), "", 401, "invalid_client"},
		{"no exp", b.assertion(t, func(c *jwt.Claims) { c.Expiry = nil }), "", 401, "invalid_client"},
		{"no jti", b.assertion(t, func(c *jwt.Claims) { c.ID = "" }), "", 401, "invalid_client"},
		{"replayed jti", replayed, "", 401, "invalid_client"},
		{"iss is not sub", b.assertion(t, func(c *jwt.Claims) { c.Subject = rb.id }), "", 401, "invalid_client"},
		{"iss and sub another client", b.assertion(t, func(c *jwt.Claims) { c.Issuer, c.Subject = rb.id, rb.id }), "", 401, "invalid_client"},
		{"alg none", none(), "", 401, "invalid_client"},
		{"HS256 keyed with the PEM public key", b.sign(t, jose.HS256, pubPEM, claims(nil)), "", 401, "invalid_client"},
		{"HS256 keyed with the JWK", b.sign(t, jose.HS256, jwkJSON, claims(nil)), "", 401, "invalid_client"},
		{"HS384 keyed with the RSA public key", rb.sign(t, jose.HS384, rsaPEM, claims(func(c *jwt.Claims) { c.Issuer, c.Subject = rb.id, rb.id })), "", 401, "invalid_client"},
		{"ES256 instead of ES384", b.sign(t, jose.ES256, mustP256(), claims(nil)), "", 401, "invalid_client"},
		{"RS256 with the registered RSA key", rb.sign(t, jose.RS256, rsaKey, claims(func(c *jwt.Claims) { c.Issuer, c.Subject = rb.id, rb.id })), "", 401, "invalid_client"},
		{"signed by an unregistered key", b.sign(t, jose.ES384, stranger, claims(nil)), "", 401, "invalid_client"},
		{"scope not registered", b.assertion(t), "system/Observation.cruds", 400, "invalid_scope"},
		{"user scope", b.assertion(t), "patient/Observation.rs", 400, "invalid_scope"},
		{"no scope", b.assertion(t), " ", 400, "invalid_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scope := tc.scope
			if scope == "" {
				scope = "system/Observation.rs"
			}
			st, body := b.request(t, tc.assertion, scope)
			if st != tc.status || body["error"] != tc.err || body["access_token"] != nil {
				t.Fatalf("status %d body %v; want %d %s", st, body, tc.status, tc.err)
			}
		})
	}
	// A wrong assertion type, and a backend client without an assertion.
	st, body := h.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:x"}, "client_assertion": {b.assertion(t)}}, nil)
	if st != http.StatusUnauthorized {
		t.Errorf("wrong assertion type: %d %v", st, body)
	}
	st, body = h.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {b.id}}, nil)
	if st != http.StatusUnauthorized {
		t.Errorf("no assertion: %d %v", st, body)
	}
	// A replayed jti stays refused after a restart.
	h.srv = h.open()
	if st, _ := b.request(t, replayed, "system/Observation.rs"); st != 401 {
		t.Errorf("replay after restart: %d", st)
	}
	// A removed client's tokens stop working.
	at := b.token(t, "system/Patient.r")
	if err := h.srv.Clients().Remove(t.Context(), b.id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Check(at); err == nil {
		t.Error("a removed backend client's token passed")
	}
}

func mustP256() *ecdsa.PrivateKey {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return k
}

// TestTokenEndpointAudit: issuance and refusals are audited, and nothing
// is handed out when the audit log cannot record it.
func TestTokenEndpointAudit(t *testing.T) {
	h := newHarness(t)
	b, _ := backendClient(t, h)
	b.token(t, "system/Observation.rs")
	if e := h.audit.last(); e.Interaction != "token-issue" || !e.Allowed || e.ClientID != b.id || e.UserID != b.id || e.AuthMethod != "smart:client_credentials" {
		t.Errorf("issue event %+v", e)
	}
	st, _ := b.request(t, b.assertion(t), "system/*.cruds")
	if e := h.audit.last(); st != 400 || e.Interaction != "token-refused" || e.Allowed || !strings.HasPrefix(e.OutcomeDesc, "invalid_scope") {
		t.Errorf("refusal event %+v", e)
	}
	st, _ = b.request(t, b.assertion(t, func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://x"} }), "system/Observation.rs")
	if e := h.audit.last(); st != 401 || e.Interaction != "client-auth-failed" || e.Allowed {
		t.Errorf("client authentication event %+v", e)
	}
	h.audit.setBroken(true)
	st, body := b.request(t, b.assertion(t), "system/Observation.rs")
	if st != http.StatusServiceUnavailable || body["access_token"] != nil {
		t.Errorf("audit down: %d %v; want 503 and no token", st, body)
	}
	for _, e := range h.audit.events {
		for _, s := range []string{e.OutcomeDesc, e.UserID, e.ClientID} {
			if strings.Contains(s, ".ey") || strings.Contains(s, "eyJ") {
				t.Errorf("a token in the audit event %+v", e)
			}
		}
	}
}
