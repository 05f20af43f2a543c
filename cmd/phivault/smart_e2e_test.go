package main

// Acceptance 4 of issue 6, end to end: a SMART app driven by
// golang.org/x/oauth2 against the running server, through the console's
// real sign-in pages (password, then TOTP) and the consent page, with
// accounts made by 'phivault user add'. What a user relies on: a token
// reaches exactly what both its scopes and the Cedar policies allow.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const appRedirect = "https://app.example/callback"

// seedClinic stores three patients, their observations, one condition,
// a practitioner and the CareTeam that relates the practitioner to pat-a
// only.
func seedClinic(t *testing.T, s *liveServer) {
	t.Helper()
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	s.put(t, map[string]any{"resourceType": "Practitioner", "id": "pr-1", "name": []any{map[string]any{"family": "House"}}})
	for _, p := range []string{"pat-a", "pat-b", "pat-c"} {
		s.put(t, map[string]any{"resourceType": "Patient", "id": p, "name": []any{map[string]any{"family": "Family" + p[4:]}}})
		s.put(t, map[string]any{"resourceType": "Observation", "id": "obs-" + p[4:], "status": "final",
			"code": map[string]any{"text": "heart rate"}, "subject": ref("Patient/" + p)})
	}
	s.put(t, map[string]any{"resourceType": "Condition", "id": "cond-a", "subject": ref("Patient/pat-a"), "code": map[string]any{"text": "asthma"}})
	s.put(t, map[string]any{"resourceType": "CareTeam", "id": "ct-a", "status": "active", "subject": ref("Patient/pat-a"),
		"participant": []any{map[string]any{"member": ref("Practitioner/pr-1")}}})
}

// addPerson creates an account with the CLI (password on stdin).
func addPerson(t *testing.T, s *liveServer, id string, flags ...string) *person {
	t.Helper()
	u := &person{id: id, password: "violet-otter-trombone-" + rand.Text()[:6]}
	cliIn(t, u.password+"\n", append([]string{"user", "add", "--data", s.dir, id, "--password-stdin"}, flags...)...)
	return u
}

// trained records current HIPAA training for a workforce account.
func trained(t *testing.T, s *liveServer, id string) {
	t.Helper()
	day := func(d int) string { return time.Now().AddDate(0, 0, d).Format(time.DateOnly) }
	cliIn(t, "", "training", "record", "--data", s.dir, id, "--course", "hipaa", "--completed", day(-1), "--expires", day(365))
}

// enrolled has the person sign in to the console once, setting up their
// authenticator app as the console asks on a first sign-in.
func enrolled(t *testing.T, s *liveServer, u *person) {
	t.Helper()
	home := s.browser(t).signIn(u, webPage{status: http.StatusSeeOther, location: "/login"})
	if home.status != http.StatusOK || !strings.Contains(home.body, u.id) {
		t.Fatalf("console after enrolment: %d %.300s", home.status, home.body)
	}
}

// registerApp registers a public SMART app with the CLI.
func registerApp(t *testing.T, s *liveServer, scopes string) *oauth2.Config {
	t.Helper()
	out := cliIn(t, "", "client", "add", "--data", s.dir, "--name", "Chart viewer", "--type", "public",
		"--redirect-uri", appRedirect, "--scope", scopes)
	id, ok := strings.CutPrefix(strings.TrimSpace(out), "client_id: ")
	if !ok || strings.Contains(out, "client_secret") {
		t.Fatalf("client add: %q", out)
	}
	// The app finds the endpoints as a SMART app does: from discovery.
	var d struct {
		Authorize string   `json:"authorization_endpoint"`
		Token     string   `json:"token_endpoint"`
		Revoke    string   `json:"revocation_endpoint"`
		PKCE      []string `json:"code_challenge_methods_supported"`
	}
	st, body := s.fhir(t, http.MethodGet, ".well-known/smart-configuration", "", nil)
	if err := json.Unmarshal([]byte(body), &d); st != http.StatusOK || err != nil || !slices.Equal(d.PKCE, []string{"S256"}) ||
		d.Authorize != s.base+"/oauth/authorize" || d.Token != s.base+"/oauth/token" || d.Revoke != s.base+"/oauth/revoke" {
		t.Fatalf("discovery: %d %s", st, body)
	}
	return &oauth2.Config{ClientID: id, RedirectURL: appRedirect, Endpoint: oauth2.Endpoint{
		AuthURL: d.Authorize, TokenURL: d.Token, AuthStyle: oauth2.AuthStyleInParams}}
}

// authorize runs the authorization-code flow with PKCE for scopes in the
// browser (signing u in if the server asks), approving the consent page
// (naming patient when it asks), and exchanges the code.
func authorize(t *testing.T, s *liveServer, b *browser, u *person, app *oauth2.Config, scopes, patient string, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	c := *app
	c.Scopes = strings.Fields(scopes)
	verifier, state := oauth2.GenerateVerifier(), rand.Text()
	opts = append(opts, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir"))
	p := b.do(http.MethodGet, c.AuthCodeURL(state, opts...), nil)
	if p.status == http.StatusSeeOther && strings.HasPrefix(p.location, "/login") {
		p = b.signIn(u, p)
	}
	back := b.approve(p, patient)
	q := back.Query()
	if !strings.HasPrefix(back.String(), appRedirect+"?") || q.Get("state") != state || q.Get("iss") != s.base {
		t.Fatalf("redirect to the app %s; want state %s and iss %s", back, state, s.base)
	}
	tok, err := c.Exchange(s.ctx(t), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.Extra("scope") != scopes {
		t.Fatalf("token scope %v; want %q", tok.Extra("scope"), scopes)
	}
	return tok
}

// reach asserts which FHIR reads a token gets (200) and which it is
// refused (403, or 404 that hides the resource).
func reach(t *testing.T, s *liveServer, name, token string, allowed, refused []string) {
	t.Helper()
	for _, rel := range allowed {
		if st, body := s.fhir(t, http.MethodGet, rel, token, nil); st != http.StatusOK {
			t.Errorf("%s: GET %s = %d %.200s; want 200", name, rel, st, body)
		}
	}
	for _, rel := range refused {
		if st, body := s.fhir(t, http.MethodGet, rel, token, nil); st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("%s: GET %s = %d %.200s; want 403 or 404", name, rel, st, body)
		}
	}
}

// searchIDs returns the ids a search returns to token.
func searchIDs(t *testing.T, s *liveServer, rel, token string) []string {
	t.Helper()
	st, body := s.fhir(t, http.MethodGet, rel, token, nil)
	if st != http.StatusOK {
		t.Fatalf("GET %s = %d %.200s", rel, st, body)
	}
	var b struct {
		Entry []struct{ Resource struct{ ID string } }
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range b.Entry {
		ids = append(ids, e.Resource.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestSMARTAppEndToEnd(t *testing.T) {
	s := startServe(t)
	seedClinic(t, s)
	amy := addPerson(t, s, "amy", "--role", "patient", "--patient", "pat-a")
	house := addPerson(t, s, "house", "--role", "physician", "--practitioner", "pr-1")
	trained(t, s, "house")
	enrolled(t, s, amy)
	enrolled(t, s, house)
	app := registerApp(t, s, "launch launch/patient openid fhirUser offline_access patient/*.rs user/*.rs")

	t.Run("standalone patient launch", func(t *testing.T) {
		b := s.browser(t)
		tok := authorize(t, s, b, amy, app, "launch/patient openid fhirUser offline_access patient/*.rs", "")
		if tok.Extra("patient") != "pat-a" || tok.RefreshToken == "" {
			t.Fatalf("patient %v, refresh token given %v", tok.Extra("patient"), tok.RefreshToken != "")
		}
		reach(t, s, "patient/*.rs", tok.AccessToken,
			[]string{"Patient/pat-a", "Observation/obs-a", "Condition/cond-a"},
			[]string{"Patient/pat-b", "Observation/obs-b", "Observation/obs-c"})
		if ids := searchIDs(t, s, "Observation", tok.AccessToken); !slices.Equal(ids, []string{"obs-a"}) {
			t.Errorf("the patient's Observation search returned %v; want only obs-a", ids)
		}
		if ids := searchIDs(t, s, "Observation?subject=Patient/pat-b", tok.AccessToken); len(ids) != 0 {
			t.Errorf("a search for another patient's observations returned %v", ids)
		}

		// The same signed-in browser grants a narrower token: Observation
		// only, so the patient's own Condition is out of reach.
		narrow := authorize(t, s, b, amy, app, "launch/patient patient/Observation.rs", "")
		reach(t, s, "patient/Observation.rs", narrow.AccessToken, []string{"Observation/obs-a"}, []string{"Condition/cond-a", "Patient/pat-a"})
		// SMART v1 scope names mean the same.
		v1 := authorize(t, s, b, amy, app, "launch/patient patient/Observation.read", "")
		reach(t, s, "patient/Observation.read", v1.AccessToken, []string{"Observation/obs-a"}, []string{"Condition/cond-a", "Observation/obs-b"})

		// Refresh-token rotation: a new pair; the old refresh token is
		// single-use, and its reuse ends the whole family.
		ctx := s.ctx(t)
		fresh, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == tok.AccessToken {
			t.Fatal("the refresh did not rotate the tokens")
		}
		reach(t, s, "refreshed", fresh.AccessToken, []string{"Observation/obs-a"}, []string{"Observation/obs-b"})
		_, err = app.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("reusing a rotated refresh token: %v; want invalid_grant", err)
		}
		for _, at := range []string{fresh.AccessToken, tok.AccessToken} {
			if st, _ := s.fhir(t, http.MethodGet, "Observation/obs-a", at, nil); st != http.StatusUnauthorized {
				t.Errorf("an access token of a family whose refresh token was replayed: %d; want 401", st)
			}
		}
		if _, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
			t.Error("the newest refresh token of a replayed family still works")
		}
	})

	t.Run("EHR launch by a physician", func(t *testing.T) {
		b := s.browser(t)
		b.signIn(house, webPage{status: http.StatusSeeOther, location: "/login"})
		launch := b.launch("pat-a")
		tok := authorize(t, s, b, house, app, "launch patient/*.rs openid fhirUser", "", oauth2.SetAuthURLParam("launch", launch))
		if tok.Extra("patient") != "pat-a" {
			t.Fatalf("launch patient %v; want pat-a", tok.Extra("patient"))
		}
		// patient/ scopes reach the launch patient only, even where the
		// physician's care relationships would reach further (none here).
		reach(t, s, "EHR launch patient/*.rs", tok.AccessToken,
			[]string{"Observation/obs-a", "Condition/cond-a"}, []string{"Observation/obs-b", "Patient/pat-c"})
		// A launch for a patient outside the physician's care: the scope
		// covers the launch patient, Cedar still refuses the records.
		stranger := authorize(t, s, b, house, app, "launch patient/*.rs", "", oauth2.SetAuthURLParam("launch", b.launch("pat-b")))
		if stranger.Extra("patient") != "pat-b" {
			t.Fatalf("launch patient %v; want pat-b", stranger.Extra("patient"))
		}
		reach(t, s, "EHR launch outside the care team", stranger.AccessToken, nil, []string{"Observation/obs-b", "Patient/pat-b", "Observation/obs-a"})
		// Only a signed-in user makes a launch.
		other := s.browser(t)
		if p := other.do(http.MethodPost, "/oauth/launch", nil); p.status != http.StatusUnauthorized {
			t.Errorf("a launch without a session: %d", p.status)
		}
	})

	t.Run("user scopes and care relationships both apply", func(t *testing.T) {
		b := s.browser(t)
		b.signIn(house, webPage{status: http.StatusSeeOther, location: "/login"})
		tok := authorize(t, s, b, house, app, "openid fhirUser user/*.rs", "")
		if tok.Extra("patient") != nil {
			t.Errorf("a user-scope grant without launch carries patient %v", tok.Extra("patient"))
		}
		// The scope allows every Observation; Cedar only pat-a's (CareTeam).
		reach(t, s, "user/*.rs", tok.AccessToken,
			[]string{"Patient/pat-a", "Observation/obs-a", "Condition/cond-a"},
			[]string{"Patient/pat-b", "Observation/obs-b", "Observation/obs-c"})
		if ids := searchIDs(t, s, "Observation", tok.AccessToken); !slices.Equal(ids, []string{"obs-a"}) {
			t.Errorf("the physician's Observation search returned %v; want only obs-a", ids)
		}
		// Cedar allows pat-a's Condition; the scope does not.
		obsOnly := authorize(t, s, b, house, app, "user/Observation.rs", "")
		reach(t, s, "user/Observation.rs", obsOnly.AccessToken, []string{"Observation/obs-a"}, []string{"Condition/cond-a", "Observation/obs-b"})
		// The app revokes its token (RFC 7009): the next request fails.
		resp, err := s.tls.PostForm(s.base+"/oauth/revoke", url.Values{"token": {obsOnly.AccessToken}, "client_id": {app.ClientID}})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %v %v", err, resp)
		}
		resp.Body.Close()
		if st, _ := s.fhir(t, http.MethodGet, "Observation/obs-a", obsOnly.AccessToken, nil); st != http.StatusUnauthorized {
			t.Errorf("a revoked access token: %d; want 401", st)
		}
		reach(t, s, "another grant of the same user after the revocation", tok.AccessToken, []string{"Observation/obs-a"}, nil)
		// A read scope does not write, whatever Cedar would allow.
		obs, _ := json.Marshal(map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
			"subject": map[string]any{"reference": "Patient/pat-a"}})
		if st, _ := s.fhir(t, http.MethodPost, "Observation", tok.AccessToken, obs); st != http.StatusForbidden {
			t.Errorf("POST with user/*.rs: %d; want 403", st)
		}
	})
}

// launch asks the server, as the signed-in EHR user, for an EHR launch
// context for patient, and returns its id.
func (b *browser) launch(patient string) string {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.s.base+"/oauth/launch", strings.NewReader(`{"patient":`+jsonString(patient)+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", b.s.base)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Launch string `json:"launch"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Launch == "" {
		b.t.Fatalf("launch: %d %v", resp.StatusCode, err)
	}
	return out.Launch
}
