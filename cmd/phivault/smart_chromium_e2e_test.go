package main

// The standalone patient launch of acceptance 4 in a real browser:
// headless Chromium goes from an app on another site to the running
// server, signs in on the console's own pages (password, then the TOTP
// code), approves on the consent page, and returns to the app, whose
// code golang.org/x/oauth2 exchanges. A browser enforces what a
// cookie-jar client does not: the SameSite=Strict session cookie, the
// pages' Content-Security-Policy, and the sign-in's return to ?next=.

import (
	"fmt"
	"github.com/phivault/phivault/internal/browsertest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

func TestSMARTChromiumStandaloneLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; run without -short")
	}
	bctx := browsertest.Context(t, 90*time.Second)
	s := startServe(t)
	seedClinic(t, s)
	amy := addPerson(t, s, "amy", "--role", "patient", "--patient", "pat-a")
	enrolled(t, s, amy)

	appSrv := httptest.NewServer(nil)
	t.Cleanup(appSrv.Close)
	appURL := strings.Replace(appSrv.URL, "127.0.0.1", "localhost", 1) // another site than the server's 127.0.0.1
	redirect := appURL + "/cb"
	scope := "launch/patient patient/*.rs openid fhirUser"
	out := cliIn(t, "", "client", "add", "--data", s.dir, "--name", "Growth chart", "--type", "public",
		"--redirect-uri", redirect, "--scope", scope)
	id, _ := strings.CutPrefix(strings.TrimSpace(out), "client_id: ")
	cfg := &oauth2.Config{ClientID: id, RedirectURL: redirect, Scopes: strings.Fields(scope), Endpoint: oauth2.Endpoint{
		AuthURL: s.base + "/oauth/authorize", TokenURL: s.base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir"))
	appSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/cb" {
			fmt.Fprint(w, `<!doctype html><p id="done">back in the app</p>`)
			return
		}
		fmt.Fprintf(w, `<!doctype html><a id="go" href="%s">Launch</a>`, strings.ReplaceAll(authURL, "&", "&amp;"))
	})

	start := time.Now()
	err := chromedp.Do(bctx,
		chromedp.Navigate(appURL+"/"),
		chromedp.Click("#go"),
		chromedp.WaitVisible("#login"),
		chromedp.SendKeys("#user", amy.id),
		chromedp.SendKeys("#password", amy.password),
		chromedp.Click("#submit"),
		chromedp.WaitVisible("#second"),
		chromedp.SendKeys("#code", amy.code(t)),
		chromedp.Click("#submit"),
		chromedp.WaitVisible(`button[value="approve"]`),
		chromedp.Click(`button[value="approve"]`),
		chromedp.WaitVisible("#done"),
	)
	if err != nil {
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		text, _ := chromedp.Run(bctx, chromedp.Text("body"))
		t.Fatalf("the launch in Chromium stopped at %s (%.300s): %v", loc, text, err)
	}
	t.Logf("standalone launch through the console sign-in in Chromium took %v", time.Since(start).Round(time.Millisecond))
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	if !strings.HasPrefix(loc, redirect+"?") || u.Query().Get("state") != "st4te" {
		t.Fatalf("back at %s", loc)
	}
	tok, err := cfg.Exchange(s.ctx(t), u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("patient") != "pat-a" {
		t.Errorf("launch patient %v; want pat-a", tok.Extra("patient"))
	}
	reach(t, s, "Chromium launch", tok.AccessToken, []string{"Observation/obs-a"}, []string{"Observation/obs-b"})

	// Signed in now: the next launch from the app goes straight to consent.
	err = chromedp.Do(bctx,
		chromedp.Navigate(appURL+"/"),
		chromedp.Click("#go"),
		chromedp.WaitVisible(`button[value="approve"]`),
	)
	if err != nil {
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("the second launch stopped at %s: %v", loc, err)
	}
}
