package smart

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"
)

// The consent page: plain server-rendered HTML, no script, one form that
// posts back to /oauth/authorize with a CSRF token bound to the session.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow {{.App}}?</title></head>
<body><main>
<h1>Allow {{.App}} to use your phivault account?</h1>
<p>Signed in as <strong>{{.User}}</strong>. The app <strong>{{.App}}</strong> (client id <code>{{.ClientID}}</code>) asks for:</p>
<ul>{{range .Scopes}}<li><code>{{.Name}}</code>: {{.Text}}</li>{{end}}</ul>
{{if .Problem}}<p role="alert"><strong>{{.Problem}}</strong></p>{{end}}
<form method="post" action="/oauth/authorize">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .AskPatient}}<p><label for="patient">Patient id for this app</label>
<input id="patient" name="patient" required pattern="[A-Za-z0-9.\-]{1,64}" value="{{.Patient}}"></p>{{end}}
<p>After you allow it, the app is sent back to <code>{{.Redirect}}</code>.</p>
<button type="submit" name="consent" value="approve">Allow</button>
<button type="submit" name="consent" value="deny">Deny</button>
</form>
</main></body></html>
`))

// bouncePage re-opens the authorization request from our own origin (no
// script: a meta refresh, with a link for browsers that ignore it).
var bouncePage = template.Must(template.New("bounce").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.}}"><title>Continue to phivault</title></head>
<body><main><p><a href="{{.}}">Continue to phivault sign-in</a></p></main></body></html>
`))

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization request refused</title></head>
<body><main><h1>This authorization request was refused</h1><p>{{.}}</p>
<p>The app that sent you here is misconfigured; nothing was shared with it.</p></main></body></html>
`))

type field struct{ Name, Value string }

type scopeText struct{ Name, Text string }

type consentData struct {
	App, ClientID, User, Redirect, CSRF, Patient, Problem string
	Scopes                                                []scopeText
	Hidden                                                []field
	AskPatient                                            bool
}

func renderHTML(w http.ResponseWriter, status int, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	t.Execute(w, data)
}

// csrfToken binds the consent form to the signed-in session.
func (s *Server) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, s.csrf)
	m.Write([]byte("consent\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) csrfOK(sessionID, got string) bool {
	return sessionID != "" && hmac.Equal([]byte(got), []byte(s.csrfToken(sessionID)))
}

// describe says in plain words what a scope lets the app do.
func describe(sc Scope) string {
	switch sc.Name {
	case "openid", "fhirUser", "profile":
		return "know who you are"
	case "launch", "launch/patient":
		return "know which patient is in context"
	case "launch/encounter":
		return "know which encounter is in context"
	case "offline_access":
		return "keep access while you are away, until you revoke it"
	case "online_access":
		return "keep access while you are signed in"
	}
	var verbs []string
	for _, p := range []struct {
		c byte
		w string
	}{{'c', "create"}, {'r', "read"}, {'u', "update"}, {'d', "delete"}, {'s', "search"}} {
		if strings.IndexByte(sc.Perms, p.c) >= 0 {
			verbs = append(verbs, p.w)
		}
	}
	what := sc.Type + " records"
	if sc.Type == "*" {
		what = "all kinds of records"
	}
	whose := map[string]string{"patient": "of the patient in context", "user": "that you can access", "system": "of any patient"}[sc.Context]
	out := strings.Join(verbs, ", ") + " " + what + " " + whose
	if sc.Query != "" {
		out += " (only " + sc.Query + ")"
	}
	return out
}
