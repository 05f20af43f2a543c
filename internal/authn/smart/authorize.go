package smart

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/b64url"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
)

// launchRec is an EHR launch context (named by the hash of its id): the
// user who opened the app and the patient in context.
type launchRec struct {
	User    string    `json:"user"`
	Patient string    `json:"patient"`
	Expires time.Time `json:"expires"`
}

const launchTTL = 5 * time.Minute

// bounceParam marks an authorization request that already went through
// the same-site bounce page.
const bounceParam = "pv_bounce"

// authParams are the parameters of an authorization request that the
// consent form carries back.
var authParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "aud", "code_challenge", "code_challenge_method", "launch", "nonce"}

// authRequest is a validated authorization request.
type authRequest struct {
	client   Client
	redirect string
	state    string
	scopes   []Scope
	form     url.Values
}

// authError is a refusal sent back to the client's redirect URI (RFC 6749
// 4.1.2.1).
type authError struct{ code, msg string }

func (e authError) Error() string { return e.code + ": " + e.msg }

// authorize serves GET and POST /oauth/authorize: it checks the request,
// sends a signed-out browser to the login page, shows the consent page,
// and on approval redirects back with a one-time code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		renderHTML(w, http.StatusBadRequest, errorPage, "The request is malformed or too large.")
		return
	}
	form := r.Form
	if r.Method == http.MethodPost {
		form = r.PostForm
	}
	for _, k := range authParams { // a repeated parameter is ambiguous (RFC 6749 3.1)
		if len(form[k]) > 1 {
			renderHTML(w, http.StatusBadRequest, errorPage, "The parameter "+k+" is repeated.")
			return
		}
	}
	ar, err := s.checkClient(r.Context(), form)
	if err != nil {
		renderHTML(w, http.StatusBadRequest, errorPage, err.Error())
		return
	}
	user, signedIn := s.c.Login.User(r)
	if !signedIn || user.SessionID == "" || user.UserID == "" {
		q := url.Values{}
		for _, k := range authParams {
			if v := form.Get(k); v != "" {
				q.Set(k, v)
			}
		}
		self := "/oauth/authorize?" + q.Encode()
		// The session cookie is SameSite=Strict, so a browser arriving
		// from the app's site does not send it. Bounce once through a
		// page of our own: the browser then navigates same-site and
		// sends the cookie.
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.URL.Query().Get(bounceParam) == "" {
			renderHTML(w, http.StatusOK, bouncePage, self+"&"+bounceParam+"=1")
			return
		}
		http.Redirect(w, r, s.c.Login.LoginURL(self), http.StatusSeeOther)
		return
	}
	lc, err := s.checkRequest(r.Context(), &ar, user)
	if err != nil {
		s.refuse(w, r, ar, err)
		return
	}
	consent := r.Method == http.MethodPost && form.Has("consent")
	if !consent {
		s.showConsent(w, ar, user, lc, "")
		return
	}
	if !s.csrfOK(user.SessionID, form.Get("csrf")) {
		renderHTML(w, http.StatusForbidden, errorPage, "The consent form expired or did not come from this site; start again from the app.")
		return
	}
	if form.Get("consent") != "approve" {
		if err := s.record(r, "consent-deny", "authorization_code", false, "the user denied the app", grant{ClientID: ar.client.ID, User: user.UserID}); err != nil {
			s.refuse(w, r, ar, authError{"temporarily_unavailable", "try again"})
			return
		}
		s.refuse(w, r, ar, authError{"access_denied", "the user denied the request"})
		return
	}
	if lc.ask {
		lc.patient = form.Get("patient")
		if !fhir.IsID(lc.patient) {
			s.showConsent(w, ar, user, lc, "Enter the id of the patient this app is for.")
			return
		}
	}
	code, err := s.newCode(r.Context(), ar, user, lc.patient)
	if err == nil {
		err = s.record(r, "consent-grant", "authorization_code", true, "scope: "+strings.Join(names(ar.scopes), " "),
			grant{ClientID: ar.client.ID, User: user.UserID, Patient: lc.patient})
	}
	if err != nil {
		s.c.Log.Error("smart: authorize", "err", err)
		s.refuse(w, r, ar, authError{"temporarily_unavailable", "try again"})
		return
	}
	s.back(w, r, ar, url.Values{"code": {code}})
}

// checkClient validates client_id and redirect_uri: until both are known
// good, errors are shown, never redirected.
func (s *Server) checkClient(ctx context.Context, form url.Values) (authRequest, error) {
	cl, err := s.clients.Get(ctx, form.Get("client_id"))
	if err != nil || cl.Type == Backend {
		return authRequest{}, errors.New("The app (client_id) is not registered here.")
	}
	redirect := form.Get("redirect_uri")
	if !contains(cl.RedirectURIs, redirect) {
		return authRequest{}, errors.New("The redirect_uri is not registered for this app.")
	}
	return authRequest{client: cl, redirect: redirect, state: form.Get("state"), form: form}, nil
}

// launchContext is the patient context an authorization ends up with.
type launchContext struct {
	patient string
	ask     bool // a clinician must name the patient on the consent page
}

// checkRequest validates the rest of the request for this user.
func (s *Server) checkRequest(ctx context.Context, ar *authRequest, user policy.Principal) (launchContext, error) {
	f := ar.form
	if f.Get("response_type") != "code" {
		return launchContext{}, authError{"unsupported_response_type", "response_type must be code"}
	}
	ch := f.Get("code_challenge")
	if f.Get("code_challenge_method") != "S256" || !validChallenge(ch) {
		return launchContext{}, authError{"invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"}
	}
	if f.Get("aud") != s.base {
		return launchContext{}, authError{"invalid_request", "aud must be this server's FHIR base URL " + s.base}
	}
	if len(f.Get("state")) > 1024 || len(f.Get("nonce")) > 1024 {
		return launchContext{}, authError{"invalid_request", "state and nonce may be at most 1024 characters"}
	}
	sc, err := ParseScopes(f.Get("scope"))
	if err != nil {
		return launchContext{}, authError{"invalid_scope", err.Error()}
	}
	if len(sc) == 0 {
		return launchContext{}, authError{"invalid_scope", "scope is required"}
	}
	if name, ok := coveredBy(sc, ar.client.scopes()); !ok {
		return launchContext{}, authError{"invalid_scope", "scope " + quoteSafe(name) + " is not registered for this app"}
	}
	if name, ok := userMay(user, sc); !ok {
		return launchContext{}, authError{"invalid_scope", "scope " + quoteSafe(name) + " is beyond what this user may grant"}
	}
	ar.scopes = sc
	var lc launchContext
	if id := f.Get("launch"); id != "" {
		var rec launchRec
		err := s.v.get(ctx, hashName(prefixLaunch, id), &rec)
		if notFound(err) || err == nil && (rec.User != user.UserID || !s.c.Now().Before(rec.Expires)) {
			return launchContext{}, authError{"invalid_request", "the launch is unknown or expired; launch the app again"}
		}
		if err != nil {
			return launchContext{}, err
		}
		lc.patient = rec.Patient
	} else if has(sc, "launch") {
		return launchContext{}, authError{"invalid_scope", "the launch scope is for EHR launch and needs a launch parameter"}
	}
	needPatient := has(sc, "launch/patient") || hasContext(sc, "patient")
	switch {
	case !needPatient:
		lc.patient = ""
	case lc.patient != "":
	case user.Has("patient"):
		lc.patient = user.Patient
	default:
		lc.ask = true
	}
	return lc, nil
}

// userMay checks the scopes against what the user may grant: never
// system/ scopes; a patient only patient/ scopes for their own record.
func userMay(user policy.Principal, sc []Scope) (string, bool) {
	for _, s := range sc {
		switch {
		case s.Context == "system":
			return s.Name, false
		case s.Context != "" && len(user.Roles) == 0:
			return s.Name, false
		case s.Context == "user" && user.Has("patient"):
			return s.Name, false
		case s.Context == "patient" && user.Has("patient") && user.Patient == "":
			return s.Name, false
		}
	}
	return "", true
}

func (s *Server) newCode(ctx context.Context, ar authRequest, user policy.Principal, patient string) (string, error) {
	acct, err := s.c.Accounts.Get(ctx, user.UserID)
	if err != nil {
		return "", err
	}
	now := s.c.Now()
	g := grant{ClientID: ar.client.ID, User: user.UserID, Scopes: names(ar.scopes), Patient: patient, SID: randomID(12),
		Epoch: acct.Epoch, AuthTime: user.AuthTime, MFA: user.MFA, Nonce: ar.form.Get("nonce"), Expires: s.familyExpiry(now, names(ar.scopes))}
	switch {
	case acct.Practitioner != "":
		g.FHIRUser = "Practitioner/" + acct.Practitioner
	case acct.Patient != "":
		g.FHIRUser = "Patient/" + acct.Patient
	}
	code := randomID(32)
	rec := codeRec{Grant: g, RedirectURI: ar.redirect, Challenge: ar.form.Get("code_challenge"), Expires: now.Add(codeTTL)}
	return code, s.v.put(ctx, hashName(prefixCode, code), rec, true)
}

// familyExpiry is when the refresh tokens of a new grant stop working.
func (s *Server) familyExpiry(now time.Time, scopes []string) time.Time {
	if contains(scopes, "offline_access") {
		return now.Add(s.c.RefreshTTL)
	}
	return now.Add(min(s.c.RefreshTTL, 12*s.c.AccessTTL))
}

func (s *Server) showConsent(w http.ResponseWriter, ar authRequest, user policy.Principal, lc launchContext, problem string) {
	d := consentData{App: ar.client.Name, ClientID: ar.client.ID, User: user.UserID, Redirect: ar.redirect,
		CSRF: s.csrfToken(user.SessionID), AskPatient: lc.ask, Problem: problem}
	for _, sc := range ar.scopes {
		d.Scopes = append(d.Scopes, scopeText{sc.Name, describe(sc)})
	}
	for _, k := range authParams {
		if v := ar.form.Get(k); v != "" {
			d.Hidden = append(d.Hidden, field{k, v})
		}
	}
	status := http.StatusOK
	if problem != "" {
		status = http.StatusBadRequest
	}
	renderHTML(w, status, consentPage, d)
}

// refuse sends an error back to the (validated) redirect URI.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ar authRequest, err error) {
	var ae authError
	if !errors.As(err, &ae) {
		s.c.Log.Error("smart: authorize", "err", err)
		ae = authError{"server_error", "internal error"}
	}
	s.back(w, r, ar, url.Values{"error": {ae.code}, "error_description": {ae.msg}})
}

func (s *Server) back(w http.ResponseWriter, r *http.Request, ar authRequest, q url.Values) {
	u, _ := url.Parse(ar.redirect) // validated at registration
	v := u.Query()
	for k, vs := range q {
		v[k] = vs
	}
	if ar.state != "" {
		v.Set("state", ar.state)
	}
	v.Set("iss", s.c.Issuer) // RFC 9207
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// validChallenge accepts an S256 challenge: 32 bytes in unpadded base64url.
func validChallenge(ch string) bool {
	b, err := b64url.Decode(ch)
	return err == nil && len(b) == 32
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// NewLaunch creates an EHR launch context for a signed-in user and a
// patient, valid for 5 minutes; the EHR side opens the app with it.
func (s *Server) NewLaunch(ctx context.Context, user policy.Principal, patient string) (string, error) {
	if !fhir.IsID(patient) {
		return "", errors.New("a launch needs a valid patient id")
	}
	if user.UserID == "" || (user.Has("patient") && user.Patient != patient) {
		return "", errors.New("this user cannot launch an app for that patient")
	}
	id := randomID(24)
	rec := launchRec{User: user.UserID, Patient: patient, Expires: s.c.Now().Add(launchTTL)}
	return id, s.v.put(ctx, hashName(prefixLaunch, id), rec, true)
}

// launch serves POST /oauth/launch for a signed-in user: a JSON body
// {"patient": id} (JSON, so that a cross-site form cannot post it) returns
// {"launch": id, "expires_in": 300}.
func (s *Server) launch(w http.ResponseWriter, r *http.Request) {
	user, ok := s.c.Login.User(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "login_required", "sign in first")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != s.c.Issuer {
		oauthError(w, http.StatusForbidden, "invalid_request", "cross-origin launch requests are refused")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		oauthError(w, http.StatusUnsupportedMediaType, "invalid_request", `send {"patient": "<id>"} as application/json`)
		return
	}
	var body struct {
		Patient string `json:"patient"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", `send {"patient": "<id>"} as application/json`)
		return
	}
	id, err := s.NewLaunch(r.Context(), user, body.Patient)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	// Who opened an app's context on which patient is audited before the
	// launch id is handed out.
	if err := s.record(r, "launch", "launch", true, "EHR launch context created", grant{User: user.UserID, Patient: body.Patient}); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the audit log is unavailable; try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"launch": id, "expires_in": int(launchTTL / time.Second)})
}
