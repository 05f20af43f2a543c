package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzForms posts arbitrary form bodies (with a valid CSRF token, so the
// handlers themselves are reached) to every state-changing page except
// sign-out: whatever arrives, the answer is a redirect or a 4xx, never a
// 5xx or a panic.
func FuzzForms(f *testing.F) {
	for _, s := range []string{
		"user=alice&password=pwalice", "user=&password=", "code=123456", "code=abcde-fghij",
		"secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&code=000000", "category=other&reason=0123456789&password=pwaud&code=",
		"user=%ff%fe&password=x", "reason=" + strings.Repeat("é", 600), "%zz", "csrf=&csrf=",
	} {
		for route := range 4 {
			f.Add(uint8(route), s)
		}
	}
	e := newEnv(f)
	// A signed-in auditor's session for the pages that need one.
	w := httptest.NewRecorder()
	if err := e.m.Start(w, httptest.NewRequest("POST", "/", nil), "aud", "password", false); err != nil {
		f.Fatal(err)
	}
	cookies := w.Result().Cookies()
	r0 := httptest.NewRequest("GET", "/", nil)
	for _, c := range cookies {
		r0.AddCookie(c)
	}
	tok := e.m.Token(httptest.NewRecorder(), r0)
	routes := []string{"/login", "/login/totp", "/account/totp", "/breakglass"}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		path := routes[int(route)%len(routes)]
		r := httptest.NewRequest("POST", "https://console.example"+path, strings.NewReader(body+"&"+url.Values{"csrf": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if path == "/login" {
			// A browser without a session, so a right password does not
			// replace the shared one.
			r.AddCookie(&http.Cookie{Name: "__Host-phivault_csrf", Value: tok})
		} else {
			for _, c := range cookies {
				r.AddCookie(c)
			}
		}
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, r)
		if w.Code >= 500 || (w.Code >= 200 && w.Code < 300 && path == "/login") {
			t.Fatalf("POST %s %q = %d", path, body, w.Code)
		}
	})
}
