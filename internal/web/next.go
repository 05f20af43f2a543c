package web

import (
	"net/http"
	"net/url"
	"strings"
)

// nextCookie remembers, across the steps of a sign-in (password, second
// factor, enrolment), the page that asked for it: an OAuth authorization
// request, say. The console's landing page forwards there once.
const nextCookie = "__Host-phivault_next"

// localPath reports whether s is a path on this server (no scheme, host or
// protocol-relative form), so forwarding to it cannot leave the site.
func localPath(s string) bool {
	if len(s) == 0 || len(s) > 4096 || s[0] != '/' || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}

// rememberNext keeps a valid ?next= of a sign-in page for 10 minutes.
func rememberNext(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: nextCookie, Value: url.QueryEscape(next), Path: "/", MaxAge: 600,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// takeNext returns the remembered page, if any, and forgets it.
func takeNext(w http.ResponseWriter, r *http.Request) (string, bool) {
	c, err := r.Cookie(nextCookie)
	if err != nil {
		return "", false
	}
	http.SetCookie(w, &http.Cookie{Name: nextCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	next, err := url.QueryUnescape(c.Value)
	if err != nil || !localPath(next) {
		return "", false
	}
	return next, true
}
