package smart

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

const appRedirect = "https://app.example/cb"

func (h *harness) oauthConfig(c Client, scope string) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ID, RedirectURL: appRedirect, Scopes: strings.Fields(scope),
		Endpoint: oauth2.Endpoint{AuthURL: h.ts.URL + "/oauth/authorize", TokenURL: h.ts.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// approve drives the browser through the consent page and returns the
// final redirect to the app.
func (h *harness) approve(t *testing.T, session, authURL string, extra url.Values) *url.URL {
	t.Helper()
	br := h.browser(t, session)
	resp, err := br.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	form := formOf(t, resp)
	form.Set("consent", "approve")
	for k, v := range extra {
		form[k] = v
	}
	resp, err = br.PostForm(h.ts.URL+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent: status %d", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (h *harness) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, h.ts.Client())
}

func TestAuthorizationCodeFlowPatientLaunch(t *testing.T) {
	h := newHarness(t)
	scope := "launch/patient patient/*.rs openid fhirUser offline_access"
	app, _ := h.addClient(t, Client{Name: "Growth Chart", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: strings.Fields(scope)})
	cfg := h.oauthConfig(app, scope)
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", h.base), oauth2.SetAuthURLParam("nonce", "n0nce"))

	// Signed out: sent to the login page, which comes back here.
	resp, err := h.browser(t, "").Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=%2Foauth%2Fauthorize%3F") {
		t.Fatalf("signed out: %d %q, want a redirect to the login page", resp.StatusCode, loc)
	}

	back := h.approve(t, "s-pat", authURL, nil)
	if got := back.Query().Get("state"); got != "st4te" || back.Host != "app.example" {
		t.Fatalf("redirect %s: want the registered URI with state", back)
	}
	tok, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("patient") != "p42" || tok.Extra("need_patient_banner") != true || tok.RefreshToken == "" {
		t.Errorf("token response: patient %v banner %v refresh %t", tok.Extra("patient"), tok.Extra("need_patient_banner"), tok.RefreshToken != "")
	}
	if got := tok.Extra("scope"); got != scope {
		t.Errorf("granted scope %q, want %q", got, scope)
	}
	if ttl := time.Until(tok.Expiry); ttl > 5*time.Minute+time.Second || ttl < 4*time.Minute {
		t.Errorf("access token lives %s, want 5m", ttl)
	}
	p, err := h.srv.Check(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"launch/patient", "patient/*.rs", "openid", "fhirUser", "offline_access"}
	if p.UserID != "pat.jones" || p.Patient != "p42" || p.ClientID != app.ID || p.Method != "smart" || p.SessionID == "" || !cmp.Equal(p.Scopes, want) {
		t.Errorf("principal %+v", p)
	}

	// The app calls the FHIR API with the token through the server's
	// bearer check.
	resp, err = cfg.Client(h.ctx(), tok).Get(h.base + "/Patient/p42")
	if err != nil {
		t.Fatal(err)
	}
	var who map[string]any
	json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if resp.StatusCode != 200 || who["user"] != "pat.jones" || who["patient"] != "p42" || who["method"] != "smart" || who["client"] != app.ID {
		t.Errorf("FHIR call with the token: %d %v", resp.StatusCode, who)
	}

	// The id_token is signed by a published key and names the user's Patient.
	idt, _ := tok.Extra("id_token").(string)
	claims := verifyWithJWKS(t, h, idt)
	if claims["fhirUser"] != h.base+"/Patient/p42" || claims["aud"] != app.ID || claims["nonce"] != "n0nce" || claims["sub"] != "pat.jones" {
		t.Errorf("id_token claims %v", claims)
	}
	if _, err := h.srv.Check(idt); err == nil {
		t.Error("an id_token passed as an access token")
	}

	// The code is single-use: a second exchange fails and ends the tokens
	// the first one issued.
	if _, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a code was redeemed twice")
	}
	if _, err := h.srv.Check(tok.AccessToken); err == nil {
		t.Error("the access token survived the reuse of its code")
	}
	if st, body := h.post(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {app.ID}}, nil); st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh after code reuse: %d %v", st, body)
	}
}

func TestEHRLaunchAndClinicianStandalone(t *testing.T) {
	h := newHarness(t)
	app, _ := h.addClient(t, Client{Name: "Meds", Type: Public, RedirectURIs: []string{appRedirect},
		Scopes: []string{"launch", "launch/patient", "patient/Observation.rs", "openid", "fhirUser"}})

	// EHR launch: the EHR asks for a launch id bound to the patient.
	br := h.browser(t, "s-dr")
	req, _ := http.NewRequest("POST", h.ts.URL+"/oauth/launch", strings.NewReader(`{"patient":"p7"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := br.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var l struct{ Launch string }
	json.NewDecoder(resp.Body).Decode(&l)
	resp.Body.Close()
	if resp.StatusCode != 200 || l.Launch == "" {
		t.Fatalf("launch: %d", resp.StatusCode)
	}
	cfg := h.oauthConfig(app, "launch patient/Observation.rs openid fhirUser")
	v := oauth2.GenerateVerifier()
	back := h.approve(t, "s-dr", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base), oauth2.SetAuthURLParam("launch", l.Launch)), nil)
	tok, err := cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := h.srv.Check(tok.AccessToken); err != nil || !p.MFA || p.Practitioner != "pr1" || p.Patient != "p7" {
		t.Errorf("clinician principal %+v %v: want MFA carried from the session", p, err)
	}
	if tok.Extra("patient") != "p7" {
		t.Errorf("EHR launch patient %v, want p7", tok.Extra("patient"))
	}
	if c := verifyWithJWKS(t, h, tok.Extra("id_token").(string)); c["fhirUser"] != h.base+"/Practitioner/pr1" {
		t.Errorf("fhirUser %v", c["fhirUser"])
	}
	if tok.RefreshToken != "" {
		t.Error("a refresh token without offline_access or online_access")
	}

	// Another user cannot use the doctor's launch.
	u := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base), oauth2.SetAuthURLParam("launch", l.Launch))
	if e := h.refusal(t, "s-pat", u); e != "invalid_request" {
		t.Errorf("someone else's launch: error %q", e)
	}

	// Standalone launch by a clinician: the consent page asks for the patient.
	cfg = h.oauthConfig(app, "launch/patient patient/Observation.rs")
	u = cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", h.base))
	resp, _ = h.browser(t, "s-dr").Get(u)
	form := formOf(t, resp)
	if _, ok := form["patient"]; !ok {
		t.Fatal("the consent page does not ask a clinician for the patient")
	}
	form.Set("consent", "approve")
	form.Set("patient", "../../etc")
	resp, _ = h.browser(t, "s-dr").PostForm(h.ts.URL+"/oauth/authorize", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad patient id: status %d, want 400", resp.StatusCode)
	}
	back = h.approve(t, "s-dr", u, url.Values{"patient": {"p9"}})
	tok, err = cfg.Exchange(h.ctx(), back.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil || tok.Extra("patient") != "p9" {
		t.Fatalf("standalone: %v %v", err, tok)
	}
}

// refusal returns the error an authorization request was redirected back
// with ("" if none).
func (h *harness) refusal(t *testing.T, session, authURL string) string {
	t.Helper()
	resp, err := h.browser(t, session).Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(resp.Header.Get("Location"))
	if u == nil || !strings.HasPrefix(u.String(), appRedirect) {
		return ""
	}
	return u.Query().Get("error")
}

// post sends a form to the server, optionally with Basic credentials
// (id, secret), and decodes the JSON answer.
func (h *harness) post(t testing.TB, path string, form url.Values, basic []string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	json.Unmarshal(buf.Bytes(), &out)
	return resp.StatusCode, out
}

func verifyWithJWKS(t *testing.T, h *harness, tok string) map[string]any {
	t.Helper()
	resp, err := h.ts.Client().Get(h.ts.URL + "/oauth/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not published", parsed.Headers[0].KeyID)
	}
	var c map[string]any
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
