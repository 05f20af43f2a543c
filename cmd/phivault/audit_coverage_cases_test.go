package main

// The cases of TestAuditCoverageServer: console sign-in, SMART, the
// admin API and the device endpoint.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/smart"
)

// acForm submits a form from the page at page (its CSRF token added) to
// path and returns the status and the redirect target.
func acForm(b *mxBrowser, page, path string, form url.Values) (int, string, error) {
	st, tok, err := b.page(page)
	if err != nil || st != http.StatusOK || tok == "" {
		return 0, "", fmt.Errorf("GET %s: %d (csrf token found: %t) %v", page, st, tok != "", err)
	}
	form.Set("csrf", tok)
	req, err := http.NewRequest(http.MethodPost, b.e.origin+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.origin)
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// acWant checks a status and a redirect target ("": any).
func acWant(st int, to string, err error, wantSt int, wantTo string) error {
	if err != nil {
		return err
	}
	if st != wantSt || (wantTo != "" && to != wantTo) {
		return fmt.Errorf("status %d to %q, want %d to %q", st, to, wantSt, wantTo)
	}
	return nil
}

// acAuth is an event of the sign-in side: no patient, decided by the
// authentication policy.
func acAuth(interaction, outcome, user, decision string) acEvent {
	return acEvent{Interaction: interaction, Action: "E", Outcome: outcome, User: user, Decision: decision}
}

func acConsoleCases(e *mxEnv, c *acCov) {
	const nurse = "u-nurse"
	b := e.browser(nurse)
	c.check("POST /login", "wrong password", func() error {
		st, to, err := acForm(b, "/login", "/login", url.Values{"user": {nurse}, "password": {"not-the-password-at-all"}})
		return acWant(st, to, err, http.StatusUnauthorized, "")
	}, acAuth("login-failed", "4", nurse, "deny"))
	c.check("POST /login", "right password: the second factor is asked", func() error {
		st, to, err := acForm(b, "/login", "/login", url.Values{"user": {nurse}, "password": {mxPassword}})
		return acWant(st, to, err, http.StatusSeeOther, "/login/totp")
	}, acAuth("login", "0", nurse, "permit"))
	c.check("POST /login/totp", "wrong code", func() error {
		st, to, err := acForm(b, "/login/totp", "/login/totp", url.Values{"code": {"000000"}})
		return acWant(st, to, err, http.StatusUnauthorized, "")
	}, acAuth("login-failed", "4", nurse, "deny"))
	c.check("POST /login/totp", "right code", func() error {
		st, to, err := acForm(b, "/login/totp", "/login/totp", url.Values{"code": {b.code()}})
		return acWant(st, to, err, http.StatusSeeOther, "/console/")
	}, acAuth("login", "0", nurse, "permit"))
	c.check("POST /breakglass", "no reason", func() error {
		st, to, err := acForm(b, "/breakglass", "/breakglass", url.Values{"category": {"emergency-treatment"}, "password": {mxPassword}})
		return acWant(st, to, err, http.StatusBadRequest, "")
	})
	e.clock.Advance(31e9) // a fresh TOTP step for the step-up
	c.check("POST /breakglass", "opened", func() error {
		st, to, err := acForm(b, "/breakglass", "/breakglass", url.Values{"category": {"emergency-treatment"},
			"reason": {"coverage test: unconscious patient"}, "password": {mxPassword}, "code": {b.code()}})
		return acWant(st, to, err, http.StatusSeeOther, "/console/")
	}, acAuth("break-glass", "0", nurse, "permit"), acAuth("login", "0", nurse, "permit")) // the step-up is a sign-in
	c.check("POST /logout", "signed out", func() error {
		st, to, err := acForm(b, "/console/", "/logout", url.Values{})
		return acWant(st, to, err, http.StatusSeeOther, "")
	}, acAuth("logout", "0", nurse, "permit"))

	// TOTP enrolment: an account without an authenticator (front desk
	// needs none to sign in: check the policy of MFA-required roles).
	ctx := e.t.Context()
	if err := e.acc.accounts.UpdateMFA(ctx, "u-vendor", func(m *account.MFA) error { m.TOTPSecret = nil; return nil }); err != nil {
		e.t.Fatal(err)
	}
	v := e.browser("u-vendor")
	if st, to, err := acForm(v, "/login", "/login", url.Values{"user": {"u-vendor"}, "password": {mxPassword}}); err != nil || st != http.StatusSeeOther {
		e.t.Fatalf("vendor sign-in: %d %q %v", st, to, err)
	}
	secret := bytes.Repeat([]byte{7}, 20)
	key := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	c.check("POST /account/totp", "wrong code: nothing changes, and the key is the one the form carries, so nothing is guessed: no event", func() error {
		st, to, err := acForm(v, "/account/totp", "/account/totp", url.Values{"secret": {key}, "code": {"000000"}})
		return acWant(st, to, err, http.StatusBadRequest, "")
	})
	e.secrets["u-vendor"] = secret
	c.check("POST /account/totp", "enrolled", func() error {
		st, to, err := acForm(v, "/account/totp", "/account/totp", url.Values{"secret": {key}, "code": {v.code()}})
		return acWant(st, to, err, http.StatusOK, "")
	}, acEvent{Interaction: "mfa-enrol", Action: "U", Outcome: "0", User: "u-vendor", Decision: "permit"},
		acAuth("login", "0", "u-vendor", "permit")) // the session now counts as proved with a second factor
}

// acPKCE is a code verifier and its S256 challenge.
func acPKCE() (verifier, challenge string) {
	verifier = strings.Repeat("coverage-verifier-", 3)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func acSMARTCases(e *mxEnv, c *acCov) {
	ctx := e.t.Context()
	const redirect = "https://app.example/callback"
	cl, sec, err := e.acc.smart.Clients().Add(ctx, smart.Client{ID: "coverage-app", Name: "coverage app", Type: smart.Confidential,
		RedirectURIs: []string{redirect}, Scopes: []string{"launch", "openid", "fhirUser", "patient/*.rs", "offline_access"}})
	if err != nil {
		e.t.Fatal(err)
	}
	app := [2]string{cl.ID, sec.Reveal()}
	const doc = "u-physician"
	b := e.browser(doc)
	if err := b.signIn(); err != nil {
		e.t.Fatal(err)
	}
	patient := "pt-ct-none"
	var launch string
	c.check("POST /oauth/launch", "not signed in", func() error {
		st, body, err := acJSON(e.client, e.origin, "/oauth/launch", map[string]string{"patient": patient})
		return acStatus(st, body, err, http.StatusUnauthorized)
	})
	c.check("POST /oauth/launch", "EHR launch for a patient", func() error {
		st, body, err := acJSON(b.c, e.origin, "/oauth/launch", map[string]string{"patient": patient})
		if err := acStatus(st, body, err, http.StatusOK); err != nil {
			return err
		}
		var out struct{ Launch string }
		err = json.Unmarshal(body, &out)
		launch = out.Launch
		return err
	}, acEvent{Interaction: "launch", Action: "E", Outcome: "0", User: doc, Decision: "permit", Patients: []string{patient}})
	verifier, challenge := acPKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {cl.ID}, "redirect_uri": {redirect}, "state": {"s1"},
		"scope": {"launch patient/*.rs"}, "aud": {e.origin + "/fhir"}, "launch": {launch},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	var code string
	authorize := func(answer string) error {
		st, to, err := acForm(b, "/oauth/authorize?"+q.Encode(), "/oauth/authorize", acWith(q, "consent", answer))
		if err := acWant(st, "", err, http.StatusSeeOther, ""); err != nil {
			return err
		}
		u, err := url.Parse(to)
		if err != nil {
			return err
		}
		code = u.Query().Get("code")
		return nil
	}
	granted := acEvent{Interaction: "consent-grant", Action: "E", Outcome: "0", User: doc, Client: cl.ID, Decision: "permit", Patients: []string{patient}}
	c.check("POST /oauth/authorize", "denied by the user", func() error { return authorize("deny") },
		acEvent{Interaction: "consent-deny", Action: "E", Outcome: "4", User: doc, Client: cl.ID, Decision: "deny"})
	c.check("POST /oauth/authorize", "approved", func() error { return authorize("approve") }, granted)
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"code_verifier": {"a-wrong-verifier-of-enough-length-0123456789"}}
	c.check("POST /oauth/token", "wrong PKCE verifier (the code is spent)", func() error {
		st, body, err := acPost(e.client, e.origin, "/oauth/token", tokenForm, app)
		return acStatus(st, body, err, http.StatusBadRequest)
	}, acEvent{Interaction: "token-refused", Action: "E", Outcome: "4", Client: cl.ID, Decision: "deny"})
	c.check("POST /oauth/authorize", "approved again", func() error { return authorize("approve") }, granted)
	var access string
	c.check("POST /oauth/token", "code exchanged", func() error {
		f := acWith(tokenForm, "code_verifier", verifier)
		f.Set("code", code)
		st, body, err := acPost(e.client, e.origin, "/oauth/token", f, app)
		if err := acStatus(st, body, err, http.StatusOK); err != nil {
			return err
		}
		var out struct {
			AccessToken string `json:"access_token"`
		}
		err = json.Unmarshal(body, &out)
		access = out.AccessToken
		return err
	}, acEvent{Interaction: "token-issue", Action: "E", Outcome: "0", User: doc, Client: cl.ID, Decision: "permit", Patients: []string{patient}})
	c.check("POST /oauth/introspect", "client not authenticated", func() error {
		st, body, err := acPost(e.client, e.origin, "/oauth/introspect", url.Values{"token": {access}, "client_id": {cl.ID}}, [2]string{})
		return acStatus(st, body, err, http.StatusUnauthorized)
	}, acEvent{Interaction: "client-auth-failed", Action: "E", Outcome: "4", Client: cl.ID, Decision: "deny"})
	c.check("POST /oauth/introspect", "the app asks about its own token: it learns nothing it was not given, so no event", func() error {
		st, body, err := acPost(e.client, e.origin, "/oauth/introspect", url.Values{"token": {access}}, app)
		if err := acStatus(st, body, err, http.StatusOK); err != nil {
			return err
		}
		if !bytes.Contains(body, []byte(`"active":true`)) {
			return fmt.Errorf("introspection: %s", body)
		}
		return nil
	})
	c.check("POST /oauth/revoke", "revoked", func() error {
		st, body, err := acPost(e.client, e.origin, "/oauth/revoke", url.Values{"token": {access}}, app)
		return acStatus(st, body, err, http.StatusOK)
	}, acEvent{Interaction: "token-revoke", Action: "E", Outcome: "0", Client: cl.ID, Decision: "permit"})
}

func acWith(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = append([]string(nil), vv...)
	}
	out.Set(k, val)
	return out
}

func acStatus(st int, body []byte, err error, want int) error {
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("status %d, want %d: %.300s", st, want, body)
	}
	return nil
}

// acPost posts a form, with HTTP Basic client credentials (id, secret)
// unless basic is empty.
func acPost(cl *http.Client, origin, path string, form url.Values, basic [2]string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, origin+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic[0] != "" {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func acJSON(cl *http.Client, origin, path string, v any) (int, []byte, error) {
	body, _ := json.Marshal(v)
	req, err := http.NewRequest(http.MethodPost, origin+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
