package smart

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in   string
		want []Scope
		bad  bool
	}{
		{in: "openid fhirUser launch/patient offline_access", want: []Scope{{Name: "openid"}, {Name: "fhirUser"}, {Name: "launch/patient"}, {Name: "offline_access"}}},
		{in: "patient/Observation.rs", want: []Scope{{Name: "patient/Observation.rs", Context: "patient", Type: "Observation", Perms: "rs"}}},
		{in: "user/*.cruds", want: []Scope{{Name: "user/*.cruds", Context: "user", Type: "*", Perms: "cruds"}}},
		{in: "patient/*.read user/Patient.write system/*.*", want: []Scope{
			{Name: "patient/*.read", Context: "patient", Type: "*", Perms: "rs"},
			{Name: "user/Patient.write", Context: "user", Type: "Patient", Perms: "cud"},
			{Name: "system/*.*", Context: "system", Type: "*", Perms: "cruds"}}},
		{in: "patient/Observation.rs?category=laboratory", want: []Scope{{Name: "patient/Observation.rs?category=laboratory", Context: "patient", Type: "Observation", Perms: "rs", Query: "category=laboratory"}}},
		{in: "  openid   openid ", want: []Scope{{Name: "openid"}}},
		{in: "", want: nil},
		{in: "patient/Observation.sr", bad: true}, // v2 letters keep their order
		{in: "patient/Observation.rr", bad: true},
		{in: "patient/Observation.", bad: true},
		{in: "patient/observation.rs", bad: true},
		{in: "doctor/*.rs", bad: true},
		{in: "patient/*.read?category=x", bad: true}, // granular scopes are v2 only
		{in: "patient/Observation.rs?", bad: true},
		{in: "patient/Observation.rs?category=a&category=b", bad: true},
		{in: "admin", bad: true},
		{in: strings.Repeat("openid ", 1000), bad: true},
	}
	for _, tc := range tests {
		got, err := ParseScopes(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseScopes(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseScopes(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseScopes(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestScopeCovers(t *testing.T) {
	tests := []struct {
		have, want string
		ok         bool
	}{
		{"patient/*.rs", "patient/Observation.rs", true},
		{"patient/*.rs", "patient/Observation.r", true},
		{"patient/*.read", "patient/Observation.rs", true},
		{"patient/*.rs", "patient/Observation.cruds", false},
		{"patient/*.rs", "user/Observation.rs", false},
		{"patient/Observation.rs", "patient/*.rs", false},
		{"patient/Observation.rs", "patient/Condition.rs", false},
		{"patient/Observation.rs", "patient/Observation.rs?category=laboratory", true},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs", false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", false},
		{"user/*.cruds", "user/*.write", true},
		{"openid", "openid", true},
		{"openid fhirUser", "offline_access", false},
		{"launch/patient", "launch", false},
	}
	for _, tc := range tests {
		have, _ := ParseScopes(tc.have)
		want, _ := ParseScopes(tc.want)
		if _, ok := coveredBy(want, have); ok != tc.ok {
			t.Errorf("%q covers %q = %t, want %t", tc.have, tc.want, ok, tc.ok)
		}
	}
}

// FuzzParseScopes: no panic; what parses is a set of known scopes that
// each cover themselves and reparse to the same thing.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"openid fhirUser", "patient/*.rs", "user/Observation.cruds?category=laboratory", "system/*.read", "patient/X.*", "a/b.c?d=e&f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScopes(s)
		if err != nil {
			if !utf8.ValidString(err.Error()) || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error text %q", err)
			}
			return
		}
		again, err := ParseScopes(strings.Join(names(sc), " "))
		if err != nil || !cmp.Equal(sc, again) {
			t.Fatalf("reparse of %q: %v %v", s, again, err)
		}
		for _, x := range sc {
			if !x.covers(x) {
				t.Fatalf("%q does not cover itself", x.Name)
			}
			if x.Context != "" && !v2Perms(x.Perms) {
				t.Fatalf("%q perms %q", x.Name, x.Perms)
			}
		}
	})
}

// FuzzAuthorize drives the authorize endpoint with arbitrary requests from
// a signed-in user: never a 5xx, never a redirect anywhere but the
// registered URI (or the login page), never a code without PKCE and the
// right audience.
func FuzzAuthorize(f *testing.F) {
	h := newHarnessOn(f, "mem")
	app, _ := h.addClient(f, Client{Name: "App", Type: Public, RedirectURIs: []string{appRedirect}, Scopes: []string{"launch/patient", "patient/*.rs", "openid"}})
	good := url.Values{"response_type": {"code"}, "client_id": {app.ID}, "redirect_uri": {appRedirect}, "scope": {"launch/patient patient/*.rs"},
		"aud": {h.base}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	f.Add(good.Encode(), "")
	f.Add(good.Encode()+"&consent=approve&csrf="+h.srv.csrfToken("s-pat"), "POST")
	f.Add("client_id="+app.ID+"&redirect_uri=https://evil.example/", "")
	f.Add("scope=%00&aud=x&launch=y", "POST")
	f.Fuzz(func(t *testing.T, query, method string) {
		var req *http.Request
		var err error
		if method == "POST" {
			req, err = http.NewRequest("POST", h.ts.URL+"/oauth/authorize", strings.NewReader(query))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			req, err = http.NewRequest("GET", h.ts.URL+"/oauth/authorize?"+query, nil)
		}
		if err != nil {
			return // not a request a client could send
		}
		req.AddCookie(&http.Cookie{Name: "session", Value: "s-pat"})
		rec := httptest.NewRecorder()
		h.srv.authorize(rec, req)
		resp := rec.Result()
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %q", resp.StatusCode, query)
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return
		}
		if !strings.HasPrefix(loc, appRedirect+"?") && !strings.HasPrefix(loc, "/login?") {
			t.Fatalf("redirect to %q for %q", loc, query)
		}
		u, _ := url.Parse(loc)
		if u.Query().Has("code") {
			q, _ := url.ParseQuery(query)
			if q.Get("code_challenge_method") != "S256" || q.Get("aud") != h.base {
				t.Fatalf("a code without PKCE or audience for %q", query)
			}
		}
	})
}

// FuzzTokenEndpoint posts arbitrary forms (with or without Basic
// credentials) to the token endpoint: never a 5xx, and a token only for a
// request that names a grant type and authenticates a client.
func FuzzTokenEndpoint(f *testing.F) {
	h := newHarnessOn(f, "mem")
	b, _ := backendClient(f, h)
	app, secret := h.addClient(f, Client{Name: "P", Type: Confidential, RedirectURIs: []string{appRedirect}, Scopes: []string{"patient/*.rs", "offline_access"}})
	f.Add(url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"}, "client_assertion_type": {assertionType}, "client_assertion": {b.assertion(f)}}.Encode(), "", "")
	f.Add("grant_type=authorization_code&code=x&redirect_uri="+url.QueryEscape(appRedirect)+"&code_verifier=abc", app.ID, secret.Reveal())
	f.Add("grant_type=refresh_token&refresh_token=%ff&client_id="+app.ID, "", "")
	f.Add("grant_type=password&username=a&password=b", app.ID, "x")
	f.Fuzz(func(t *testing.T, body, user, pass string) {
		req, err := http.NewRequest("POST", h.ts.URL+"/oauth/token", strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		h.srv.token(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if rec.Code == http.StatusOK {
			q, _ := url.ParseQuery(body)
			if q.Get("grant_type") == "" || (user == "" && q.Get("client_assertion") == "" && q.Get("client_id") == "") {
				t.Fatalf("a token for %q", body)
			}
		}
	})
}
