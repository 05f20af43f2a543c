package web

import (
	"errors"
	"net/http"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
)

const (
	msgBadLogin  = "Wrong user id or password."
	msgThrottled = "Too many attempts. Wait a few minutes and try again."
	msgWrongCode = "Wrong or already used code."
	msgExpired   = "Your sign-in took too long or had too many wrong codes. Start again."
	msgDown      = "Sign-in is unavailable just now. Try again later."
)

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	rememberNext(w, r)
	if _, ok := h.o.Sessions.Principal(r); ok {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Passkeys: true})
}

// login checks the password and sends the browser on: to the second
// factor if one is enrolled, to enrolment if the user's roles need one,
// else to the console.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if !h.csrf(w, r) {
		return
	}
	user, pw := r.PostFormValue("user"), r.PostFormValue("password")
	if user == "" || pw == "" || len(user) > 128 || len(pw) > 1024 {
		h.render(w, r, http.StatusBadRequest, "login", page{Title: "Sign in", Error: "Give a user id and a password.", Passkeys: true})
		return
	}
	acct, err := h.o.Accounts.Login(r.Context(), user, account.Password(pw), sourceOf(r))
	switch {
	case errors.Is(err, account.ErrThrottled):
		h.render(w, r, http.StatusTooManyRequests, "login", page{Title: "Sign in", Error: msgThrottled, Passkeys: true})
		return
	case errors.Is(err, account.ErrBadCredentials):
		h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: msgBadLogin, Passkeys: true})
		return
	case err != nil:
		h.o.Log.Error("web: login", "err", err)
		h.render(w, r, http.StatusServiceUnavailable, "login", page{Title: "Sign in", Error: msgDown, Passkeys: true})
		return
	}
	mfa, err := h.o.Accounts.MFA(r.Context(), acct.ID)
	if err != nil {
		h.o.Log.Error("web: login: second factors", "err", err)
		h.message(w, r, http.StatusServiceUnavailable, msgDown)
		return
	}
	if len(mfa.TOTPSecret) > 0 || len(mfa.Passkeys) > 0 {
		if err := h.o.Sessions.Begin(w, r, acct.ID); err != nil {
			h.sessionError(w, r, err)
			return
		}
		http.Redirect(w, r, "/login/totp", http.StatusSeeOther)
		return
	}
	if err := h.o.Sessions.Start(w, r, acct.ID, "password", false); err != nil {
		h.sessionError(w, r, err)
		return
	}
	if h.needsMFA(acct.Roles) {
		http.Redirect(w, r, "/account/totp", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (h *handler) secondPage(w http.ResponseWriter, r *http.Request) {
	user, ok := h.o.Sessions.Pending(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	mfa, err := h.o.Accounts.MFA(r.Context(), user)
	if err != nil {
		h.message(w, r, http.StatusServiceUnavailable, msgDown)
		return
	}
	h.render(w, r, http.StatusOK, "second", page{Title: "Second factor", Passkeys: len(mfa.Passkeys) > 0})
}

// second checks a TOTP or recovery code for the browser's pending login.
func (h *handler) second(w http.ResponseWriter, r *http.Request) {
	if !h.csrf(w, r) {
		return
	}
	user, ok := h.o.Sessions.Pending(r)
	if !ok {
		h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: msgExpired, Passkeys: true})
		return
	}
	var method string
	err := h.o.Accounts.UpdateMFA(r.Context(), user, func(m *account.MFA) error {
		var err error
		method, err = useCode(m, r.PostFormValue("code"), h.o.Now())
		return err
	})
	if errors.Is(err, errWrongCode) {
		h.failed(r, "login-failed", user, "totp", "wrong or reused second-factor code")
		if h.o.Sessions.Fail(r) == 0 {
			h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: msgExpired, Passkeys: true})
			return
		}
		h.render(w, r, http.StatusUnauthorized, "second", page{Title: "Second factor", Error: msgWrongCode})
		return
	}
	if err != nil {
		h.o.Log.Error("web: second factor", "err", err)
		h.message(w, r, http.StatusServiceUnavailable, msgDown)
		return
	}
	if err := h.o.Sessions.Complete(w, r, user, method); err != nil {
		h.sessionError(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// logout ends the session. A browser whose session already ended (its
// form token died with it) is simply sent to sign in: there is nothing
// left for a forged request to change.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.o.Sessions.Check(r); err != nil {
		if _, ok := h.o.Sessions.Principal(r); ok {
			h.message(w, r, http.StatusForbidden, "This form has expired or came from another site. Reload the page and try again.")
			return
		}
		h.o.Sessions.End(w, r, "signed out")
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	h.o.Sessions.End(w, r, "signed out")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sessionError answers a failure to start or change a session.
func (h *handler) sessionError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, session.ErrNoSession), errors.Is(err, session.ErrMismatch):
		h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: msgExpired, Passkeys: true})
	default:
		h.o.Log.Error("web: session", "err", err)
		h.message(w, r, http.StatusServiceUnavailable, msgDown)
	}
}
