// Package web is the console's HTML side: server-rendered pages
// (html/template, no inline script or style, one embedded style sheet),
// the sign-in flow (password, then TOTP, a recovery code or a passkey),
// TOTP enrolment with recovery codes, the signed-in home page, sign-out
// and break-the-glass. Sessions, CSRF tokens and timeouts belong to
// package session; every state-changing form is checked by it.
//
// Every page answers with its own Content-Security-Policy, which allows
// only same-origin styles, scripts, images, fetches and form targets.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the Content-Security-Policy of every console page.
const CSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Accounts is what the pages need from the account directory.
// Implementations must be safe for concurrent use.
type Accounts interface {
	// Login checks a password; it fails with account.ErrBadCredentials
	// (whatever the cause) or account.ErrThrottled, and throttles and
	// audits failures itself.
	Login(ctx context.Context, id string, pw account.Password, source string) (account.Account, error)
	// MFA returns the account's second-factor material.
	MFA(ctx context.Context, id string) (account.MFA, error)
	// UpdateMFA changes it atomically: fn's error aborts the change and
	// is returned (errors.Is must find it).
	UpdateMFA(ctx context.Context, id string, fn func(*account.MFA) error) error
}

// Auditor durably records an event (audit.Log implements it).
type Auditor interface {
	Record(ctx context.Context, e *audit.Event) error
}

// DefaultRequireMFA are the roles that reach patient data: they must
// prove a second factor before they get a principal with MFA.
var DefaultRequireMFA = []string{"physician", "nurse", "front-desk", "billing", "researcher", "patient"}

// DefaultCategories are the break-the-glass reason categories recorded
// in audit (the free-text reason is recorded only as a keyed hash).
var DefaultCategories = []string{"emergency-treatment", "patient-safety", "continuity-of-care", "legal-requirement", "other"}

// Options configure Handler.
type Options struct {
	Sessions *session.Manager // required
	Accounts Accounts         // required
	Audit    Auditor          // required
	Log      *slog.Logger
	Now      func() time.Time // TOTP clock, default time.Now
	Issuer   string           // issuer shown in authenticator apps, default "phivault"
	// RequireMFA lists roles that need a second factor (default
	// DefaultRequireMFA); a user holding one without any enrolled is sent
	// to TOTP enrolment after the password.
	RequireMFA []string
	Categories []string // break-the-glass categories, default DefaultCategories
	// Passkeys shows the passkey buttons (id="passkey-login" on the
	// sign-in and second-factor pages, id="passkey-stepup" on the
	// break-the-glass page) and loads /static/passkey.js there.
	Passkeys bool
	// SSO, when set, names the external identity provider: the sign-in
	// page then offers "Sign in with <SSO>" (/sso/login, id="sso-login").
	SSO string
	// Extra are further routes by ServeMux pattern (for example the
	// passkey ceremonies), returned beside the console's own.
	Extra map[string]http.Handler
}

type handler struct {
	o     Options
	pages map[string]*template.Template
}

// Handler returns the console's routes by ServeMux pattern, for
// server.Config.Routes.
func Handler(o Options) (map[string]http.Handler, error) {
	if o.Sessions == nil || o.Accounts == nil || o.Audit == nil {
		return nil, errors.New("web: Options.Sessions, Accounts and Audit are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Issuer == "" {
		o.Issuer = "phivault"
	}
	if o.RequireMFA == nil {
		o.RequireMFA = DefaultRequireMFA
	}
	if o.Categories == nil {
		o.Categories = DefaultCategories
	}
	h := &handler{o: o, pages: map[string]*template.Template{}}
	for _, p := range []string{"login", "second", "enrol", "codes", "console", "breakglass", "message"} {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		h.pages[p] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	routes := map[string]http.Handler{
		"GET /login":         http.HandlerFunc(h.loginPage),
		"POST /login":        http.HandlerFunc(h.login),
		"GET /login/totp":    http.HandlerFunc(h.secondPage),
		"POST /login/totp":   http.HandlerFunc(h.second),
		"GET /account/totp":  http.HandlerFunc(h.enrolPage),
		"POST /account/totp": http.HandlerFunc(h.enrol),
		"GET /console/":      http.HandlerFunc(h.console),
		"POST /logout":       http.HandlerFunc(h.logout),
		"GET /breakglass":    http.HandlerFunc(h.breakGlassPage),
		"POST /breakglass":   http.HandlerFunc(h.breakGlass),
		"GET /static/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		}),
		"GET /{$}": http.RedirectHandler("/console/", http.StatusSeeOther),
	}
	for p, x := range o.Extra {
		if _, dup := routes[p]; dup {
			return nil, errors.New("web: extra route " + p + " is taken")
		}
		routes[p] = x
	}
	return routes, nil
}

// page is the data every template gets.
type page struct {
	Title    string
	CSRF     string
	Error    string
	Notice   string
	Passkeys bool
	SSO      string // the identity provider's name on the sign-in page

	User       string
	Roles      []string
	MFA        bool
	NeedMFA    bool
	BreakGlass string // until when, "" if none
	Category   string

	Secret     string       // base32 TOTP secret during enrolment
	URI        template.URL // otpauth:// URI during enrolment (built by us)
	QR         template.URL // data: URI of the link's QR code (PNG)
	Codes      []string     // recovery codes, shown once
	Categories []string
}

// render writes page name with status and the console's headers.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.CSRF = h.o.Sessions.Token(w, r)
	p.Passkeys = p.Passkeys && h.o.Passkeys
	if name == "login" {
		p.SSO = h.o.SSO
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := h.pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		h.o.Log.Error("web: template", "page", name, "err", err)
	}
}

// message renders a short page with an error message.
func (h *handler) message(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "message", page{Title: http.StatusText(status), Error: msg})
}

// csrf checks a state-changing request; false means it answered 403.
func (h *handler) csrf(w http.ResponseWriter, r *http.Request) bool {
	if err := h.o.Sessions.Check(r); err != nil {
		h.message(w, r, http.StatusForbidden, "This form has expired or came from another site. Reload the page and try again.")
		return false
	}
	return true
}

func (h *handler) needsMFA(roles []string) bool {
	for _, r := range roles {
		for _, q := range h.o.RequireMFA {
			if r == q {
				return true
			}
		}
	}
	return false
}

// failed records a refused second factor or step-up.
func (h *handler) failed(r *http.Request, interaction, user, method, desc string) {
	ev := &audit.Event{Time: h.o.Now(), Interaction: interaction, Action: "E", Outcome: audit.MinorFailure, OutcomeDesc: desc,
		UserID: user, SourceIP: sourceOf(r), UserAgent: r.UserAgent(), AuthMethod: method, Policies: []string{"authentication"}}
	if err := h.o.Audit.Record(r.Context(), ev); err != nil {
		h.o.Log.Error("web: audit of a refused authentication failed", "err", err)
	}
}

func sourceOf(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
