package main

// Console sign-in for the authorization matrix test: the real pages
// (POST /login, /login/totp, /breakglass) driven with a cookie jar and
// TOTP codes computed from the account's key by the server's clock.

import (
	"encoding/base32"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// mxBrowser is one console sign-in: a cookie jar that does not follow
// redirects, so that each page's answer is checked.
type mxBrowser struct {
	e    *mxEnv
	user string
	c    *http.Client
}

var mxCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (e *mxEnv) browser(user string) *mxBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &mxBrowser{e: e, user: user, c: &http.Client{Transport: e.transport, Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page GETs path and returns the status and the form's CSRF token.
func (b *mxBrowser) page(path string) (int, string, error) {
	resp, err := b.c.Get(b.e.origin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	m := mxCSRF.FindSubmatch(body)
	if m == nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(m[1]), err
}

// post submits a form from the page at path (its CSRF token added) and
// returns the redirect target; anything but 303 is an error.
func (b *mxBrowser) post(path string, form url.Values) (string, error) {
	st, tok, err := b.page(path)
	if err != nil || st != http.StatusOK || tok == "" {
		return "", fmt.Errorf("GET %s: %d (csrf token found: %t) %v", path, st, tok != "", err)
	}
	form.Set("csrf", tok)
	req, err := http.NewRequest(http.MethodPost, b.e.origin+path, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.origin)
	resp, err := b.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("POST %s: %d %.200s", path, resp.StatusCode, body)
	}
	return resp.Header.Get("Location"), nil
}

// code is the user's current TOTP code by the server's clock.
func (b *mxBrowser) code() string {
	key := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b.e.secrets[b.user])
	c, err := totp.GenerateCodeCustom(key, b.e.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		b.e.t.Fatal(err)
	}
	return c
}

// signIn signs in with the password and a TOTP code through the pages.
func (b *mxBrowser) signIn() error {
	to, err := b.post("/login", url.Values{"user": {b.user}, "password": {mxPassword}})
	if err != nil || to != "/login/totp" {
		return fmt.Errorf("sign-in of %s: password step went to %q: %v", b.user, to, err)
	}
	if to, err = b.post("/login/totp", url.Values{"code": {b.code()}}); err != nil || to != "/console/" {
		return fmt.Errorf("sign-in of %s: TOTP step went to %q: %v", b.user, to, err)
	}
	return nil
}

// breakGlass opens a break-the-glass window with the step-up (password
// and a fresh TOTP code; the caller moved the clock past the code used
// to sign in).
func (b *mxBrowser) breakGlass() error {
	to, err := b.post("/breakglass", url.Values{"category": {"emergency-treatment"},
		"reason": {"matrix test: unconscious patient in the emergency room"}, "password": {mxPassword}, "code": {b.code()}})
	if err != nil || to != "/console/" {
		return fmt.Errorf("break-the-glass of %s went to %q: %v", b.user, to, err)
	}
	return nil
}

// touch loads the console home page, which keeps the session from idling
// out while the clock moves.
func (b *mxBrowser) touch() error {
	st, _, err := b.page("/console/")
	if err != nil || st != http.StatusOK {
		return fmt.Errorf("console of %s: %d %v", b.user, st, err)
	}
	return nil
}
