package main

// The running server of the authorization matrix test (authz_matrix_test.go):
// serve's wiring over a fresh data directory, with a clock the test moves,
// device mTLS, the loaded data and one account per role.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/detect"
	"github.com/phivault/phivault/internal/server"
)

// mxClock is the clock of accounts, sessions, TOTP, SMART and the policy
// engine: real time plus an offset the test moves forward.
type mxClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *mxClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *mxClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// mxPassword is every test account's password (long, not a common one).
const mxPassword = "matrix-Cell-passphrase-7194"

// mxWorkforce are the roles whose accounts act as a Practitioner and sign
// in through the console pages.
var mxWorkforce = []string{"physician", "nurse", "front-desk", "billing", "researcher",
	"privacy-officer", "security-officer", "administrator", "auditor"}

// mxConsents are the consent states of the matrix, by the key used in
// resource ids.
var mxConsents = map[string]string{"none": "none", "deny": "deny", "permit-research": "research"}

// mxEnv is the running server and what the test loaded into it.
type mxEnv struct {
	t         *testing.T
	n         *node
	acc       *access
	clock     *mxClock
	origin    string       // https://127.0.0.1:PORT
	client    *http.Client // trusts the server; no client certificate
	device    *http.Client // presents the device certificate (CN matrix-monitor)
	transport *http.Transport
	operator  string            // operator-role token
	tokens    map[string]string // account id -> bearer token for its account
	secrets   map[string][]byte // account id -> TOTP key
	bodies    map[string][]byte // "Type/id" -> the body loaded
}

// newMxEnv starts serve's public handler (FHIR API, bearer and session
// authentication, console pages, SMART, device endpoint) over a fresh
// data directory on a TLS 1.3 httptest server, and loads the data and
// accounts.
func newMxEnv(t *testing.T) *mxEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	n, err := openNode(ctx, dir, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	clock := &mxClock{}
	if n.policy, err = n.openPolicyAt(clock.Now); err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(dir, tlsDirName)
	cert, _, err := server.DevCertificate(tlsDir)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := server.NewCertReloader(filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem"), log)
	if err != nil {
		t.Fatal(err)
	}
	caFile, devCert := mxDeviceCA(t)
	clients, err := server.NewClientCAs(server.ClientCAsConfig{CAFile: caFile, Log: log, Audit: n.audit})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	ts.EnableHTTP2 = true
	ts.TLS = server.NewTLSConfig(certs, clients)
	ts.TLS.Certificates = []tls.Certificate{cert} // no SNI for 127.0.0.1: keep httptest's own certificate out
	e := &mxEnv{t: t, n: n, clock: clock, origin: "https://" + ts.Listener.Addr().String(),
		tokens: map[string]string{}, secrets: map[string][]byte{}, bodies: map[string][]byte{}}
	api := n.api(e.origin + "/fhir")
	if api.Alerts, err = detect.NewAlertStore(ctx, n.db, n.barrier); err != nil { // serves /fhir/_alerts and /fhir/_cases as serve does
		t.Fatal(err)
	}
	if e.acc, err = n.openAccessWith(ctx, e.origin, log, accessOptions{Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.acc.routes["/device/fhir/"] = clients.RequireClientCert(http.StripPrefix("/device", api.Handler()))
	h = n.gate(server.Handler(server.Config{FHIR: api.Handler(), Auth: e.acc.auth, Sessions: e.acc.sessions,
		Routes: e.acc.routes, Audit: n.audit, Log: log, Metrics: server.NewMetrics()}))
	ts.StartTLS()
	t.Cleanup(func() { ts.Close(); cancel(); n.close() })

	pemBytes, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	e.transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}
	e.client = &http.Client{Transport: e.transport, Timeout: time.Minute}
	e.device = &http.Client{Timeout: time.Minute, Transport: &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{devCert}}}}
	tok, _, err := n.tokens.Mint("matrix-operator", []string{authn.OperatorRole}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.operator = tok.Reveal()
	e.load()
	e.accounts(ctx)
	return e
}

// mxDeviceCA writes a client CA bundle and returns its file and a device
// certificate it issued (common name matrix-monitor).
func mxDeviceCA(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "matrix device CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	devKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	devTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "matrix-monitor"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	devDER, err := x509.CreateCertificate(rand.Reader, devTmpl, caCert, &devKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "device-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, tls.Certificate{Certificate: [][]byte{devDER}, PrivateKey: devKey}
}

// mxPatients are the loaded patients: careteam (every workforce user's
// Practitioner is on an active CareTeam about them) or not, by consent;
// the "self" ones belong to the patient accounts.
func mxPatients() []string {
	var out []string
	for _, rel := range []string{"ct", "no", "self"} {
		for _, c := range []string{"none", "deny", "research"} {
			out = append(out, "pt-"+rel+"-"+c)
		}
	}
	return out
}

// load stores the matrix data through the API as the operator.
func (e *mxEnv) load() {
	e.put(mxJSON(`{"resourceType":"Organization","id":"org-1","name":"Matrix Clinic"}`))
	e.put(mxPractitioner("pr-ref"))
	var members []string
	for _, role := range mxWorkforce {
		e.put(mxPractitioner("pr-" + role))
		members = append(members, `{"member":{"reference":"Practitioner/pr-`+role+`"}}`)
	}
	for _, pt := range mxPatients() {
		e.put(mxPatient(pt))
		e.put(mxObservation("obs-"+pt, pt))
		e.put(mxJSON(`{"resourceType":"Condition","id":"cond-` + pt + `","subject":{"reference":"Patient/` + pt + `"},` +
			`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},` +
			`"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]}}`))
		e.put(mxJSON(`{"resourceType":"Coverage","id":"cov-` + pt + `","status":"active","beneficiary":{"reference":"Patient/` + pt + `"},` +
			`"payor":[{"reference":"Organization/org-1"}]}`))
		e.put(mxClaim("claim-"+pt, pt))
		if strings.HasPrefix(pt, "pt-ct-") {
			e.put(mxJSON(`{"resourceType":"CareTeam","id":"team-` + pt + `","status":"active","subject":{"reference":"Patient/` + pt + `"},` +
				`"participant":[` + strings.Join(members, ",") + `]}`))
		}
		switch {
		case strings.HasSuffix(pt, "-deny"): // denies everyone (matrix_gen's "deny")
			e.put(mxConsent("consent-"+pt, pt, `{"type":"deny"}`, "OPTOUT"))
		case strings.HasSuffix(pt, "-research"):
			e.put(mxConsent("consent-"+pt, pt, `{"type":"permit","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HRESCH"}]}`, "OPTIN"))
		}
	}
}

// mxJSON parses one of the test's resource literals; nil if it is not
// JSON (put then fails the test).
func mxJSON(s string) map[string]any {
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		return nil
	}
	return m
}

func mxPractitioner(id string) map[string]any {
	return mxJSON(`{"resourceType":"Practitioner","id":"` + id + `","name":[{"family":"Matrix","given":["` + id + `"]}]}`)
}

func mxPatient(id string) map[string]any {
	return mxJSON(`{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Synthetic","given":["` + id + `"]}],` +
		`"gender":"unknown","birthDate":"1970-01-01","managingOrganization":{"reference":"Organization/org-1"}}`)
}

func mxObservation(id, pt string) map[string]any {
	m := mxJSON(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
		`"subject":{"reference":"Patient/` + pt + `"},"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)
	if id != "" {
		m["id"] = id
	}
	return m
}

func mxClaim(id, pt string) map[string]any {
	m := mxJSON(`{"resourceType":"Claim","status":"active","use":"claim","created":"2026-01-05",` +
		`"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},` +
		`"patient":{"reference":"Patient/` + pt + `"},"provider":{"reference":"Organization/org-1"},` +
		`"priority":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/processpriority","code":"normal"}]},` +
		`"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cov-` + pt + `"}}]}`)
	if id != "" {
		m["id"] = id
	}
	return m
}

func mxConsent(id, pt, provision, rule string) map[string]any {
	return mxJSON(`{"resourceType":"Consent","id":"` + id + `","status":"active",` +
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/` + pt + `"},` +
		`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"` + rule + `"}]},` +
		`"provision":` + provision + `}`)
}

// put stores res (which has an id) as the operator and keeps its body.
func (e *mxEnv) put(res map[string]any) {
	e.t.Helper()
	if res == nil {
		e.t.Fatal("a resource literal of the matrix test is not JSON")
	}
	b, err := json.Marshal(res)
	if err != nil {
		e.t.Fatal(err)
	}
	ref := fmt.Sprint(res["resourceType"], "/", res["id"])
	st, body, err := e.send(e.client, http.MethodPut, e.origin+"/fhir/"+ref, e.operator, "TREAT", b)
	if err != nil || (st != http.StatusOK && st != http.StatusCreated) {
		e.t.Fatalf("loading %s: %d %v %.300s", ref, st, err, body)
	}
	e.bodies[ref] = b
}

// send sends one FHIR request (bearer token if not empty, purpose of use
// as X-Purpose-Of-Use) and returns the status and body.
func (e *mxEnv) send(c *http.Client, method, u, bearer, purpose string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Purpose-Of-Use", purpose)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// accounts creates one account per role (the patient role: one per
// consent state, each the patient of a "self" patient), with current
// HIPAA training and TOTP, and mints each a bearer token.
func (e *mxEnv) accounts(ctx context.Context) {
	e.t.Helper()
	dir := e.acc.accounts
	var accts []account.Account
	for _, role := range mxWorkforce {
		accts = append(accts, account.Account{ID: "u-" + role, Name: role, Roles: []string{role}, Practitioner: "pr-" + role})
	}
	for _, c := range []string{"none", "deny", "research"} {
		accts = append(accts, account.Account{ID: "u-patient-" + c, Name: "patient", Roles: []string{"patient"}, Patient: "pt-self-" + c})
	}
	accts = append(accts, account.Account{ID: "u-vendor", Name: "vendor", Roles: []string{"vendor"}})
	now := e.clock.Now()
	for _, a := range accts {
		if err := dir.Create(ctx, a, mxPassword, "matrix-test"); err != nil {
			e.t.Fatalf("create %s: %v", a.ID, err)
		}
		tr := account.Training{Course: "hipaa", Completed: now.Add(-24 * time.Hour), Expires: now.AddDate(1, 0, 0), Recorded: "matrix-test"}
		if err := dir.RecordTraining(ctx, a.ID, tr, "matrix-test"); err != nil {
			e.t.Fatal(err)
		}
		secret := make([]byte, 20)
		rand.Read(secret)
		if err := dir.UpdateMFA(ctx, a.ID, func(m *account.MFA) error { m.TOTPSecret = secret; return nil }); err != nil {
			e.t.Fatal(err)
		}
		e.secrets[a.ID] = secret
		got, err := dir.Get(ctx, a.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		tok, _, err := e.n.tokens.MintAccount(got.ID, got.Roles, got.Epoch, 2*time.Hour)
		if err != nil {
			e.t.Fatal(err)
		}
		e.tokens[a.ID] = tok.Reveal()
	}
}
