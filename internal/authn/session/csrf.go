package session

import (
	"crypto/subtle"
	"errors"
	"net/http"
)

// CSRF token transport: a hidden form field, or a request header for
// scripts of our own (the passkey pages) that post JSON.
const (
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
	// preCookie carries a double-submit token for browsers that have no
	// session yet (the sign-in form).
	preCookie = "__Host-phivault_csrf"
)

// ErrCSRF: a state-changing request came from another origin or without
// the right token. Callers answer 403 and change nothing.
var ErrCSRF = errors.New("session: cross-site request refused")

// Token returns the CSRF token for the forms of the page answering r: the
// token of the browser's session or pending login or, for a browser with
// neither, a double-submit token that it also sets as a cookie.
func (m *Manager) Token(w http.ResponseWriter, r *http.Request) string {
	m.sync(r)
	m.mu.Lock()
	_, rec := m.lookup(r)
	var tok string
	if rec != nil {
		tok = rec.csrf
	}
	m.mu.Unlock()
	if tok != "" {
		return tok
	}
	if c, err := r.Cookie(preCookie); err == nil {
		if _, ok := parseCookie(c.Value); ok {
			return c.Value
		}
	}
	tok = randText()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return tok
}

// Check guards a state-changing request. It refuses cross-origin browser
// requests (Sec-Fetch-Site, Origin) and requires the CSRF token, from the
// form field or the X-CSRF-Token header, to equal (in constant time) the
// token of the browser's session or pending login, or, for a browser with
// neither, its double-submit cookie. It reads at most 64 KiB of form body.
func (m *Manager) Check(r *http.Request) error {
	if err := m.cop.Check(r); err != nil {
		return ErrCSRF
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		got = r.PostFormValue(CSRFField)
	}
	m.sync(r)
	m.mu.Lock()
	_, rec := m.lookup(r)
	var want string
	if rec != nil {
		want = rec.csrf
	}
	m.mu.Unlock()
	if want == "" {
		c, err := r.Cookie(preCookie)
		if err != nil {
			return ErrCSRF
		}
		if _, ok := parseCookie(c.Value); !ok {
			return ErrCSRF
		}
		want = c.Value
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrCSRF
	}
	return nil
}
