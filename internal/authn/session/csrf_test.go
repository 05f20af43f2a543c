package session

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCSRF(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	tok := f.m.Token(httptest.NewRecorder(), b.req("GET"))
	post := func(form url.Values, hdr map[string]string, br *browser) *http.Request {
		r := httptest.NewRequest("POST", "https://console.example/logout", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		for _, c := range br.cookies {
			r.AddCookie(c)
		}
		return r
	}
	other := f.signIn(t, "bob", true)
	otherTok := f.m.Token(httptest.NewRecorder(), other.req("GET"))
	tests := []struct {
		name string
		form url.Values
		hdr  map[string]string
		br   *browser
		ok   bool
	}{
		{"form token", url.Values{"csrf": {tok}}, nil, b, true},
		{"header token", nil, map[string]string{CSRFHeader: tok}, b, true},
		{"same-origin browser", url.Values{"csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://console.example"}, b, true},
		{"missing", nil, nil, b, false},
		{"wrong", url.Values{"csrf": {tok[:len(tok)-1] + "x"}}, nil, b, false},
		{"another session's", url.Values{"csrf": {otherTok}}, nil, b, false},
		{"cross-site", url.Values{"csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, b, false},
		{"foreign origin", url.Values{"csrf": {tok}}, map[string]string{"Origin": "https://evil.example"}, b, false},
		{"no session, no cookie", url.Values{"csrf": {tok}}, nil, newBrowser(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.m.Check(post(tt.form, tt.hdr, tt.br))
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrCSRF)) {
				t.Errorf("Check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCSRFDoubleSubmitBeforeSignIn(t *testing.T) {
	f := newFixture(t, Options{})
	b := newBrowser()
	w := httptest.NewRecorder()
	tok := f.m.Token(w, b.req("GET"))
	b.keep(w)
	if c := b.cookies[preCookie]; c == nil || c.Value != tok || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("double-submit cookie = %+v", c)
	}
	if again := f.m.Token(httptest.NewRecorder(), b.req("GET")); again != tok {
		t.Error("the token changed between pages")
	}
	for _, tt := range []struct {
		sent string
		ok   bool
	}{{tok, true}, {"", false}, {randText(), false}} {
		r := httptest.NewRequest("POST", "https://console.example/login", strings.NewReader(url.Values{"csrf": {tt.sent}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range b.cookies {
			r.AddCookie(c)
		}
		if err := f.m.Check(r); (err == nil) != tt.ok {
			t.Errorf("Check(sent=%q) = %v, want ok=%v", tt.sent, err, tt.ok)
		}
	}
}
