package main

// Acceptance 6 of issue 6 ("disabling a user ends their sessions and
// tokens within 5 seconds"), against the running server: while a
// physician's SMART access token and console session are in use, an
// operator disables the account with 'phivault user disable' (through
// the admin socket); the very next request with either fails.

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestDisableEndsSMARTTokensAndSessions(t *testing.T) {
	s := startServe(t)
	seedClinic(t, s)
	doc := addPerson(t, s, "dr.gone", "--role", "physician", "--practitioner", "pr-1")
	trained(t, s, "dr.gone")
	enrolled(t, s, doc)
	app := registerApp(t, s, "openid fhirUser offline_access user/*.rs")
	b := s.browser(t)
	tok := authorize(t, s, b, doc, app, "openid fhirUser offline_access user/*.rs", "")

	// In use: the token reads, and so does the console session (the
	// console reads the FHIR API with its cookie).
	if st, body := s.fhir(t, http.MethodGet, "Observation/obs-a", tok.AccessToken, nil); st != http.StatusOK {
		t.Fatalf("token before disable: %d %.200s", st, body)
	}
	if p := b.do(http.MethodGet, "/fhir/Observation/obs-a", nil); p.status != http.StatusOK {
		t.Fatalf("console session before disable: %d %.200s", p.status, p.body)
	}
	if p := b.do(http.MethodGet, "/console/", nil); p.status != http.StatusOK {
		t.Fatalf("console before disable: %d", p.status)
	}

	start := time.Now()
	out := cliIn(t, "", "user", "disable", "--data", s.dir, "dr.gone", "--reason", "left the hospital")
	disabled := time.Now()
	st, _ := s.fhir(t, http.MethodGet, "Observation/obs-a", tok.AccessToken, nil)
	tokenRefused := time.Since(disabled)
	console := b.do(http.MethodGet, "/fhir/Observation/obs-a", nil)
	sessionRefused := time.Since(disabled)
	if st != http.StatusUnauthorized {
		t.Errorf("the next FHIR request with the disabled user's access token: %d; want 401", st)
	}
	if console.status != http.StatusUnauthorized {
		t.Errorf("the next FHIR request with the disabled user's console session: %d; want 401", console.status)
	}
	if p := b.do(http.MethodGet, "/console/", nil); p.status == http.StatusOK {
		t.Errorf("the console still shows the disabled user's home page")
	}
	_, err := app.TokenSource(s.ctx(t), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refreshing the disabled user's grant: %v; want invalid_grant", err)
	}
	// Signing in again is refused, and enabling the account does not
	// bring back what was issued before.
	again := s.browser(t)
	login := again.follow("/login")
	if p := again.do(http.MethodPost, "/login", url.Values{"csrf": {login.inputs().Get("csrf")}, "user": {doc.id}, "password": {doc.password}}); p.status != http.StatusUnauthorized {
		t.Errorf("a disabled user's password sign-in: %d; want 401", p.status)
	}
	cliIn(t, "", "user", "enable", "--data", s.dir, "dr.gone", "--reason", "came back")
	if st, _ := s.fhir(t, http.MethodGet, "Observation/obs-a", tok.AccessToken, nil); st != http.StatusUnauthorized {
		t.Errorf("a token issued before the disable works after enable: %d", st)
	}
	if p := b.do(http.MethodGet, "/fhir/Observation/obs-a", nil); p.status != http.StatusUnauthorized {
		t.Errorf("a session of before the disable works after enable: %d", p.status)
	}
	// 'phivault user revoke' ends what was issued without disabling:
	// the user signs in again, and the new grant and session end at once.
	b2 := s.browser(t)
	tok2 := authorize(t, s, b2, doc, app, "openid fhirUser offline_access user/*.rs", "")
	if st, _ := s.fhir(t, http.MethodGet, "Observation/obs-a", tok2.AccessToken, nil); st != http.StatusOK {
		t.Fatalf("the token of a sign-in after enable: %d", st)
	}
	cliIn(t, "", "user", "revoke", "--data", s.dir, "dr.gone")
	if st, _ := s.fhir(t, http.MethodGet, "Observation/obs-a", tok2.AccessToken, nil); st != http.StatusUnauthorized {
		t.Errorf("the next request with a revoked user's token: %d; want 401", st)
	}
	if p := b2.do(http.MethodGet, "/fhir/Observation/obs-a", nil); p.status != http.StatusUnauthorized {
		t.Errorf("the next request with a revoked user's session: %d; want 401", p.status)
	}
	t.Logf("%s: disable took %v through the admin socket; next token request refused %v after it, next session request %v after it",
		out[:len(out)-1], disabled.Sub(start), tokenRefused, sessionRefused)
}
