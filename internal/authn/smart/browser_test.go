package smart

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

// TestChromiumStandaloneLaunch drives a standalone patient launch in
// headless Chromium from an app on another site (http://localhost) to the
// authorization server (https://127.0.0.1): the cross-site arrival is
// bounced so the SameSite=Strict session cookie counts, the user signs in,
// approves on the consent page under the server's CSP, and the app gets a
// code it exchanges with golang.org/x/oauth2. A second launch skips the
// sign-in.
func TestChromiumStandaloneLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; run without -short")
	}
	browsertest.Need(t)
	h := newHarness(t)
	appSrv := httptest.NewServer(nil)
	t.Cleanup(appSrv.Close)
	appURL := strings.Replace(appSrv.URL, "127.0.0.1", "localhost", 1) // another site than the server's 127.0.0.1
	redirect := appURL + "/cb"
	scope := "launch/patient patient/*.rs openid fhirUser"
	app, _ := h.addClient(t, Client{Name: "Growth Chart", Type: Public, RedirectURIs: []string{redirect}, Scopes: strings.Fields(scope)})
	cfg := h.oauthConfig(app, scope)
	cfg.RedirectURL = redirect
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", h.base))
	appSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/cb" {
			fmt.Fprint(w, `<!doctype html><p id="done">back in the app</p>`)
			return
		}
		fmt.Fprintf(w, `<!doctype html><a id="go" href="%s">Launch</a>`, strings.ReplaceAll(authURL, "&", "&amp;"))
	})

	bctx := browsertest.Context(t, 60*time.Second)
	start := time.Now()
	err := chromedp.Do(bctx,
		chromedp.Navigate(appURL+"/"),
		chromedp.Click("#go"),
		chromedp.WaitVisible("#signin"),
		chromedp.Click("#signin"),
		chromedp.WaitVisible(`button[value="approve"]`),
		chromedp.Click(`button[value="approve"]`),
		chromedp.WaitVisible("#done"),
	)
	if err != nil {
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("launch in Chromium stopped at %s: %v", loc, err)
	}
	t.Logf("standalone launch in Chromium took %v", time.Since(start).Round(time.Millisecond))
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	if !strings.HasPrefix(loc, redirect+"?") || u.Query().Get("state") != "st4te" {
		t.Fatalf("back at %s", loc)
	}
	tok, err := cfg.Exchange(h.ctx(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := h.srv.Check(tok.AccessToken); err != nil || p.Patient != "p42" || p.UserID != "pat.jones" {
		t.Fatalf("principal %+v, %v", p, err)
	}

	// Signed in now: the next launch goes straight to the consent page.
	err = chromedp.Do(bctx,
		chromedp.Navigate(appURL+"/"),
		chromedp.Click("#go"),
		chromedp.WaitVisible(`button[value="approve"]`),
	)
	if err != nil {
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("second launch stopped at %s: %v", loc, err)
	}
}
