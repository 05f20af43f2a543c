package web

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/policy"
)

// principal returns the signed-in caller, or sends the browser to sign in
// (or to its pending second factor) and returns false.
func (h *handler) principal(w http.ResponseWriter, r *http.Request) (policy.Principal, bool) {
	p, ok := h.o.Sessions.Principal(r)
	if ok {
		return p, true
	}
	to := "/login"
	if _, pending := h.o.Sessions.Pending(r); pending {
		to = "/login/totp"
	}
	if r.Method == http.MethodGet {
		http.Redirect(w, r, to, http.StatusSeeOther)
	} else {
		h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: "Your session has ended. Sign in again.", Passkeys: true})
	}
	return policy.Principal{}, false
}

func (h *handler) home(p policy.Principal) page {
	pg := page{Title: "Console", User: p.UserID, Roles: p.Roles, MFA: p.MFA, NeedMFA: !p.MFA && h.needsMFA(p.Roles)}
	if p.BreakGlass != nil {
		pg.BreakGlass = p.BreakGlass.Until.UTC().Format(time.RFC3339)
		pg.Category = p.BreakGlass.Reason
	}
	return pg
}

func (h *handler) console(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/console/" {
		h.message(w, r, http.StatusNotFound, "There is no such page.")
		return
	}
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	if next, ok := takeNext(w, r); ok && (p.MFA || !h.needsMFA(p.Roles)) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	pg := h.home(p)
	pg.Passkeys = true // the "Add a passkey" button, shown when Options.Passkeys
	h.render(w, r, http.StatusOK, "console", pg)
}

func (h *handler) breakGlassPage(w http.ResponseWriter, r *http.Request) {
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	pg := h.home(p)
	pg.Title, pg.Categories, pg.Passkeys = "Emergency access", h.o.Categories, true
	h.render(w, r, http.StatusOK, "breakglass", pg)
}

// breakGlass opens an emergency access window after checking the reason
// and a fresh re-authentication: the password again and a second factor
// (a code here, or a passkey step-up just done through the passkey pages).
func (h *handler) breakGlass(w http.ResponseWriter, r *http.Request) {
	if !h.csrf(w, r) {
		return
	}
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	again := func(status int, msg string) {
		if status == http.StatusUnauthorized && h.o.Sessions.FailStepUp(r) == 0 {
			h.render(w, r, status, "login", page{Title: "Sign in", Error: "Too many failed confirmations: you have been signed out.", Passkeys: true})
			return
		}
		pg := h.home(p)
		pg.Title, pg.Categories, pg.Passkeys, pg.Error = "Emergency access", h.o.Categories, true, msg
		h.render(w, r, status, "breakglass", pg)
	}
	category := r.PostFormValue("category")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if !contains(h.o.Categories, category) {
		again(http.StatusBadRequest, "Choose a category.")
		return
	}
	if n := utf8.RuneCountInString(reason); n < 10 || n > 500 || !utf8.ValidString(reason) {
		again(http.StatusBadRequest, "Give a reason of 10 to 500 characters.")
		return
	}
	pw := r.PostFormValue("password")
	if pw == "" || len(pw) > 1024 {
		again(http.StatusBadRequest, "Give your password again.")
		return
	}
	if _, err := h.o.Accounts.Login(r.Context(), p.UserID, account.Password(pw), sourceOf(r)); err != nil {
		h.failed(r, "break-glass", p.UserID, "password", "break-the-glass refused: step-up password")
		status, msg := http.StatusUnauthorized, "Wrong password."
		if errors.Is(err, account.ErrThrottled) {
			status, msg = http.StatusTooManyRequests, msgThrottled
		} else if !errors.Is(err, account.ErrBadCredentials) {
			status, msg = http.StatusServiceUnavailable, msgDown
		}
		again(status, msg)
		return
	}
	method := "password+passkey"
	if code := r.PostFormValue("code"); code != "" {
		err := h.o.Accounts.UpdateMFA(r.Context(), p.UserID, func(m *account.MFA) error {
			var err error
			method, err = useCode(m, code, h.o.Now())
			method = "password+" + method
			return err
		})
		if errors.Is(err, errWrongCode) {
			h.failed(r, "break-glass", p.UserID, "totp", "break-the-glass refused: step-up code")
			again(http.StatusUnauthorized, msgWrongCode)
			return
		} else if err != nil {
			again(http.StatusServiceUnavailable, msgDown)
			return
		}
	} else if !h.o.Sessions.SteppedUpWith(r, "passkey") {
		h.failed(r, "break-glass", p.UserID, "password", "break-the-glass refused: no second factor")
		again(http.StatusUnauthorized, "Give the code from your authenticator app (or confirm with a passkey).")
		return
	}
	if err := h.o.Sessions.Reauthenticated(r, method); err != nil {
		h.sessionError(w, r, err)
		return
	}
	if _, err := h.o.Sessions.OpenBreakGlass(r, category, reason); err != nil {
		if errors.Is(err, session.ErrAudit) {
			again(http.StatusServiceUnavailable, "The audit log is unavailable; emergency access cannot be opened.")
			return
		}
		h.sessionError(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
