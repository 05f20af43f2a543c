package main

// A confidential SMART app against the running server: registered with
// 'phivault client add --type confidential' (the secret is printed once),
// it exchanges its code with client_secret_basic through
// golang.org/x/oauth2 and introspects its own token (RFC 7662); a wrong
// secret gets invalid_client and no token, and introspection follows the
// account (a disabled user's token is inactive at once).

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestSMARTConfidentialAppEndToEnd(t *testing.T) {
	s := startServe(t)
	seedClinic(t, s)
	nurse := addPerson(t, s, "nora", "--role", "nurse", "--practitioner", "pr-1")
	trained(t, s, "nora")
	enrolled(t, s, nurse)
	scope := "openid fhirUser user/Observation.rs"
	out := cliIn(t, "", "client", "add", "--data", s.dir, "--name", "Ward board", "--type", "confidential",
		"--redirect-uri", appRedirect, "--scope", scope)
	var id, secret string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "client_id: "); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(line, "client_secret: "); ok {
			secret = v
		}
	}
	if id == "" || len(secret) < 32 {
		t.Fatalf("client add printed %q; want a client_id and a secret", out)
	}
	app := &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: appRedirect, Endpoint: oauth2.Endpoint{
		AuthURL: s.base + "/oauth/authorize", TokenURL: s.base + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	if list := cliIn(t, "", "client", "list", "--data", s.dir); strings.Contains(list, secret) {
		t.Fatal("client list shows the secret")
	}

	b := s.browser(t)
	tok := authorize(t, s, b, nurse, app, scope, "")
	reach(t, s, "nurse user/Observation.rs", tok.AccessToken, []string{"Observation/obs-a"}, []string{"Observation/obs-b", "Condition/cond-a"})
	if idt, _ := tok.Extra("id_token").(string); idt == "" {
		t.Error("an openid grant without an id_token")
	}

	// A second code, exchanged with a wrong secret: invalid_client, no token.
	wrong := *app
	wrong.ClientSecret = secret[:len(secret)-1] + "x"
	if strings.HasSuffix(secret, "x") {
		wrong.ClientSecret = secret[:len(secret)-1] + "y"
	}
	verifier := oauth2.GenerateVerifier()
	wrong.Scopes = strings.Fields(scope)
	p := b.do(http.MethodGet, wrong.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir")), nil)
	code := b.approve(p, "").Query().Get("code")
	bad, err := wrong.Exchange(s.ctx(t), code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || bad != nil {
		t.Errorf("exchange with a wrong secret: %v %v; want invalid_client and no token", bad, err)
	}

	introspect := func(user, pass, token string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.base+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
		resp, err := s.tls.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if st, m := introspect(id, secret, tok.AccessToken); st != http.StatusOK || m["active"] != true || m["sub"] != "nora" || m["scope"] != scope {
		t.Errorf("introspection: %d %v", st, m)
	}
	if st, m := introspect(id, wrong.ClientSecret, tok.AccessToken); st != http.StatusUnauthorized || m["active"] != nil {
		t.Errorf("introspection with a wrong secret: %d %v; want 401", st, m)
	}
	cliIn(t, "", "user", "disable", "--data", s.dir, "nora", "--reason", "moved away")
	if st, m := introspect(id, secret, tok.AccessToken); st != http.StatusOK || m["active"] != false {
		t.Errorf("introspection of a disabled user's token: %d %v; want inactive", st, m)
	}
}
