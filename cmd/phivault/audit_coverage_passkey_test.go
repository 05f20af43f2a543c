package main

// Audit coverage of the passkey routes (POST /passkey/...). WebAuthn
// needs a host name for its relying party, so serve registers them only
// for a named address: this test serves the same node at
// https://localhost:PORT and drives the ceremonies with a software
// platform authenticator.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/phivault/phivault/internal/authn/passkey"
	"github.com/phivault/phivault/internal/server"
)

// acPasskeyQuiet are the passkey routes that record nothing, and why.
var acPasskeyQuiet = map[string]string{
	"POST /passkey/register/begin": "hands out a challenge; the registration is audited when it finishes",
	"POST /passkey/login/begin":    "hands out a challenge; the sign-in is audited when it finishes",
	"POST /passkey/stepup/begin":   "hands out a challenge; the step-up is audited when it finishes",
}

// TestAuditCoveragePasskeys performs every passkey route.
func TestAuditCoveragePasskeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server with the authorization matrix's data (about 2 s)")
	}
	e := newMxEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var h http.Handler
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	tlsDir := filepath.Join(e.n.dir, tlsDirName)
	cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	origin := "https://localhost:" + port
	acc, err := e.n.openAccessWith(ctx, origin, slog.New(slog.DiscardHandler), accessOptions{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	api := e.n.api(origin + "/fhir")
	t.Cleanup(api.Close)
	h = e.n.gate(server.Handler(server.Config{FHIR: api.Handler(), Auth: acc.auth, Sessions: acc.sessions,
		Routes: acc.routes, Audit: e.n.audit, Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()}))
	ts.StartTLS()
	t.Cleanup(ts.Close)

	// The routes a named address adds are the passkey routes, and this
	// test covers them.
	var routes []string
	for r := range acc.routes {
		if _, ok := e.acc.routes[r]; !ok {
			if !strings.HasPrefix(r, "POST /passkey/") {
				t.Errorf("route %q is served only at a named address and is not a passkey route: cover it", r)
			}
			routes = append(routes, r)
		}
	}
	if len(routes) < 6 {
		t.Fatalf("a named address added %d passkey routes (%q); the enumeration is broken", len(routes), routes)
	}

	pemBytes, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	addr := ts.Listener.Addr().String()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	newBrowser := func(user string) *mxBrowser {
		jar, _ := cookiejar.New(nil)
		return &mxBrowser{e: &mxEnv{t: t, origin: origin, clock: e.clock, secrets: e.secrets}, user: user,
			c: &http.Client{Transport: tr, Jar: jar, Timeout: time.Minute,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	}
	c := &acCov{t: t, db: e.n.db, covered: map[string]bool{}}
	call := func(b *mxBrowser, path, body string, status int, out *[]byte) func() error {
		return func() error {
			req, err := http.NewRequest(http.MethodPost, origin+path, strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set(passkey.CSRFHeader, "1")
			req.Header.Set("Origin", origin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := b.c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != status {
				return fmt.Errorf("status %d, want %d: %.300s", resp.StatusCode, status, got)
			}
			if out != nil {
				*out = got
			}
			return nil
		}
	}
	const doc = "u-physician"
	b := newBrowser(doc)
	if err := b.signIn(); err != nil {
		t.Fatal(err)
	}
	key := newACSoftKey(t, origin)
	var opts []byte
	c.check("POST /passkey/register/begin", acPasskeyQuiet["POST /passkey/register/begin"], call(b, "/passkey/register/begin", "", 200, &opts))
	c.check("POST /passkey/register/finish", "a damaged answer: bad input, nothing registered, no event", func() error {
		return call(b, "/passkey/register/finish", `{"id":`, 400, nil)()
	})
	c.check("POST /passkey/register/begin", "again", call(b, "/passkey/register/begin", "", 200, &opts))
	c.check("POST /passkey/register/finish", "registered", func() error {
		return call(b, "/passkey/register/finish", string(key.create(opts)), 201, nil)()
	}, acEvent{Interaction: "passkey-register", Action: "C", Outcome: "0", User: doc, Decision: "permit"})
	c.check("POST /passkey/stepup/begin", acPasskeyQuiet["POST /passkey/stepup/begin"], call(b, "/passkey/stepup/begin", "", 200, &opts))
	c.check("POST /passkey/stepup/finish", "proved", func() error {
		return call(b, "/passkey/stepup/finish", string(key.get(opts)), 200, nil)()
	}, acEvent{Interaction: "step-up", Action: "E", Outcome: "0", User: doc, Decision: "permit"})

	anon := newBrowser("")
	c.check("POST /passkey/login/begin", acPasskeyQuiet["POST /passkey/login/begin"], call(anon, "/passkey/login/begin", "", 200, &opts))
	c.check("POST /passkey/login/finish", "a forged signature (the user handle it claims is not trusted: no user named)", func() error {
		forged := bytes.Replace(key.get(opts), []byte(`"signature":"`), []byte(`"signature":"AAAA`), 1)
		return call(anon, "/passkey/login/finish", string(forged), 400, nil)()
	}, acEvent{Interaction: "login-failed", Action: "E", Outcome: "4", Decision: "deny"})
	c.check("POST /passkey/login/begin", "again", call(anon, "/passkey/login/begin", "", 200, &opts))
	c.check("POST /passkey/login/finish", "passwordless sign-in", func() error {
		return call(anon, "/passkey/login/finish", string(key.get(opts)), 200, nil)()
	}, acEvent{Interaction: "login", Action: "E", Outcome: "0", User: doc, Decision: "permit"})
	c.check("POST /passkey/stepup/finish", "no ceremony under way", func() error {
		return call(anon, "/passkey/stepup/finish", string(key.get(opts)), 400, nil)()
	})

	for _, r := range routes {
		if !c.covered[r] {
			t.Errorf("passkey route %q has no audit coverage case", r)
		}
	}
}

// acSoftKey is a software platform authenticator holding one
// discoverable credential (as navigator.credentials would answer).
type acSoftKey struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	id     []byte
	handle []byte
	count  uint32
	origin string
}

func newACSoftKey(t *testing.T, origin string) *acSoftKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &acSoftKey{t: t, key: key, id: id, origin: origin}
}

var acB64 = base64.RawURLEncoding.EncodeToString

const acFlags = byte(protocol.FlagUserPresent | protocol.FlagUserVerified)

func (k *acSoftKey) clientData(typ string, challenge protocol.URLEncodedBase64) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": acB64(challenge), "origin": k.origin, "crossOrigin": false})
	return cd
}

// create answers creation options with a "none" attestation.
func (k *acSoftKey) create(options []byte) []byte {
	var cc protocol.CredentialCreation
	if err := json.Unmarshal(options, &cc); err != nil {
		k.t.Fatalf("creation options: %v: %s", err, options)
	}
	o := cc.Response
	handle, _ := o.User.ID.(string)
	var err error
	if k.handle, err = base64.RawURLEncoding.DecodeString(handle); err != nil {
		k.t.Fatal(err)
	}
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256),
		XCoord:        k.key.PublicKey.X.FillBytes(make([]byte, 32)),
		YCoord:        k.key.PublicKey.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		k.t.Fatal(err)
	}
	rp := sha256.Sum256([]byte(o.RelyingParty.ID))
	ad := append(rp[:], acFlags|byte(protocol.FlagAttestedCredentialData))
	ad = binary.BigEndian.AppendUint32(ad, k.count)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(append(ad, k.id...), cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		k.t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"id": acB64(k.id), "rawId": acB64(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{"clientDataJSON": acB64(k.clientData("webauthn.create", o.Challenge)),
			"attestationObject": acB64(att), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{}})
	return out
}

// get answers request options with a signed assertion.
func (k *acSoftKey) get(options []byte) []byte {
	var ca protocol.CredentialAssertion
	if err := json.Unmarshal(options, &ca); err != nil {
		k.t.Fatalf("request options: %v: %s", err, options)
	}
	o := ca.Response
	k.count++
	rp := sha256.Sum256([]byte(o.RelyingPartyID))
	ad := binary.BigEndian.AppendUint32(append(rp[:], acFlags), k.count)
	cd := k.clientData("webauthn.get", o.Challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"id": acB64(k.id), "rawId": acB64(k.id), "type": "public-key", "authenticatorAttachment": "platform",
		"response":               map[string]any{"clientDataJSON": acB64(cd), "authenticatorData": acB64(ad), "signature": acB64(sig), "userHandle": acB64(k.handle)},
		"clientExtensionResults": map[string]any{}})
	return out
}
