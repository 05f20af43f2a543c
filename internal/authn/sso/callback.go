package sso

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
)

// failure is a refused login: what the user sees, the audit's reason
// category and the detail for the log (never a token or code).
type failure struct {
	status int
	reason string
	user   string
	detail error
}

func (f *failure) Error() string { return f.reason + ": " + fmt.Sprint(f.detail) }

func fail(status int, reason string, detail error) *failure {
	return &failure{status: status, reason: reason, detail: detail}
}

// callback finishes the flow; see the package comment for what it checks.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	// The login cookie is spent whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	res, f := h.finish(ctx, r)
	if f == nil {
		f = h.complete(ctx, w, r, res)
	}
	if f == nil {
		http.Redirect(w, r, res.next, http.StatusFound)
		return
	}
	h.deps.Log.Warn("sso: login refused", "reason", f.reason, "user", f.user, "err", f.detail)
	outcome := audit.MinorFailure
	if f.status >= 500 {
		outcome = audit.SeriousFail
	}
	ev := h.event(r, "login-failed", outcome, "single sign-on refused: "+f.reason, f.user, nil, false)
	if err := h.deps.Audit.Record(ctx, ev); err != nil {
		h.deps.Log.Error("sso: audit of a refused login failed", "err", err)
	}
	msg := "Sign-in failed. Start again from the login page."
	switch {
	case f.reason == "no-mapped-role" || f.reason == "role-conflict" || f.reason == "disabled":
		msg = "Your account may not sign in to phivault. Ask your security officer for access."
	case f.status >= 500:
		msg = "Sign-in is unavailable right now. Try again in a moment."
	}
	h.page(w, f.status, msg)
}

// result is a verified login.
type result struct {
	id    string
	name  string
	roles []string
	mfa   bool
	next  string
}

// idClaims are the ID token claims used besides the verified registered ones.
type idClaims struct {
	AMR []string `json:"amr"`
	AZP string   `json:"azp"`
}

// finish checks the state, exchanges the code and verifies the ID token.
func (h *Handler) finish(ctx context.Context, r *http.Request) (result, *failure) {
	q := r.URL.Query()
	c, err := r.Cookie(cookieName)
	if err != nil {
		return result{}, fail(http.StatusBadRequest, "state", errors.New("no login cookie"))
	}
	now := h.deps.Now()
	st, err := h.cookie.parse(c.Value, now)
	if err != nil {
		return result{}, fail(http.StatusBadRequest, "state", err)
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		return result{}, fail(http.StatusBadRequest, "state", errors.New("state does not match the login cookie"))
	}
	fresh, err := h.used.use(st.State, time.Unix(st.Expires, 0), now)
	if err != nil {
		return result{}, fail(http.StatusServiceUnavailable, "busy", err)
	}
	if !fresh {
		return result{}, fail(http.StatusBadRequest, "replay", errors.New("state already used"))
	}
	if e := q.Get("error"); e != "" {
		// The provider's error code is from a fixed vocabulary; its
		// description is free text and is not logged.
		return result{}, fail(http.StatusForbidden, "provider-refused", fmt.Errorf("provider error %.40q", e))
	}
	code := q.Get("code")
	if code == "" {
		return result{}, fail(http.StatusBadRequest, "no-code", errors.New("callback without code"))
	}
	p, verifier, err := h.discover(ctx)
	if err != nil {
		return result{}, fail(http.StatusBadGateway, "provider-unreachable", err)
	}
	tok, err := h.oauth(p).Exchange(h.ctx(ctx), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// Only the error code: the body may echo what was sent.
			return result{}, fail(http.StatusBadRequest, "code-exchange", fmt.Errorf("token endpoint answered %d %.40q", re.Response.StatusCode, re.ErrorCode))
		}
		return result{}, fail(http.StatusBadGateway, "provider-unreachable", errors.New("token endpoint unreachable"))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return result{}, fail(http.StatusBadGateway, "token", errors.New("no id_token in the token response"))
	}
	idt, err := verifier.Verify(h.ctx(ctx), raw)
	if err != nil {
		return result{}, fail(http.StatusForbidden, "token", verifyError(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return result{}, fail(http.StatusForbidden, "nonce", errors.New("ID token nonce does not match the login"))
	}
	var claims idClaims
	all := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return result{}, fail(http.StatusForbidden, "token", errors.New("ID token claims unreadable"))
	}
	if err := idt.Claims(&all); err != nil {
		return result{}, fail(http.StatusForbidden, "token", errors.New("ID token claims unreadable"))
	}
	if len(idt.Audience) > 1 && claims.AZP != h.cfg.ClientID {
		return result{}, fail(http.StatusForbidden, "token", errors.New("ID token has several audiences and another authorized party"))
	}
	res := result{
		id:    AccountID(idt.Issuer, idt.Subject),
		name:  h.displayName(all),
		roles: h.cfg.mapRoles(claimStrings(all[h.cfg.RoleClaim])),
		mfa:   mfaFromAMR(claims.AMR),
		next:  st.Next,
	}
	return res, nil
}

// verifyError keeps go-oidc's error category (expired, issuer, audience,
// signature) without the token.
func verifyError(err error) error {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return errors.New("ID token expired")
	}
	return fmt.Errorf("ID token rejected: %v", err)
}

// displayName picks the configured name claim, then preferred_username,
// then email.
func (h *Handler) displayName(all map[string]any) string {
	for _, k := range []string{h.cfg.NameClaim, "preferred_username", "email"} {
		if s, ok := all[k].(string); ok && s != "" {
			if len(s) > 200 {
				s = s[:200]
			}
			return s
		}
	}
	return ""
}

// complete creates or updates the account, audits the login and starts
// the session.
func (h *Handler) complete(ctx context.Context, w http.ResponseWriter, r *http.Request, res result) *failure {
	withUser := func(f *failure) *failure { f.user = res.id; return f }
	acct, err := h.deps.Accounts.Get(ctx, res.id)
	exists := err == nil
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		return withUser(fail(http.StatusServiceUnavailable, "accounts-unavailable", err))
	}
	if exists && acct.Disabled {
		return withUser(fail(http.StatusForbidden, "disabled", errors.New("the phivault account is disabled")))
	}
	if len(res.roles) == 0 || checkRoleMix(res.roles) != nil {
		reason := "no-mapped-role"
		if len(res.roles) > 0 {
			reason = "role-conflict"
		}
		if exists && len(acct.Roles) > 0 {
			// The provider no longer grants a usable role: existing
			// sessions and tokens lose theirs too.
			if err := h.deps.Accounts.SetRoles(ctx, res.id, nil, "sso"); err != nil {
				h.deps.Log.Error("sso: clearing the roles of a refused user failed", "user", res.id, "err", err)
			}
		}
		return withUser(fail(http.StatusForbidden, reason, fmt.Errorf("roles %v", res.roles)))
	}
	if !exists {
		err := h.deps.Accounts.CreateExternal(ctx, account.Account{ID: res.id, Name: res.name, Roles: res.roles, Created: h.deps.Now().UTC()}, "sso")
		if errors.Is(err, account.ErrExists) { // a concurrent first login
			err = h.deps.Accounts.SetRoles(ctx, res.id, res.roles, "sso")
		}
		if err != nil {
			return withUser(fail(http.StatusServiceUnavailable, "accounts-unavailable", err))
		}
	} else if !slices.Equal(sortedCopy(acct.Roles), res.roles) {
		if err := h.deps.Accounts.SetRoles(ctx, res.id, res.roles, "sso"); err != nil {
			return withUser(fail(http.StatusServiceUnavailable, "accounts-unavailable", err))
		}
	}
	// Fail closed: no session without a durable login record.
	if err := h.deps.Audit.Record(ctx, h.event(r, "login", audit.Success, "", res.id, res.roles, res.mfa)); err != nil {
		return withUser(fail(http.StatusServiceUnavailable, "audit-unavailable", err))
	}
	if err := h.deps.Sessions.Start(w, r, res.id, "sso", res.mfa); err != nil {
		return withUser(fail(http.StatusServiceUnavailable, "session", err))
	}
	return nil
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// event is a login audit event; the method is "sso+mfa" when the provider
// proved a second factor.
func (h *Handler) event(r *http.Request, interaction, outcome, desc, user string, roles []string, mfa bool) *audit.Event {
	method := "sso"
	if mfa {
		method = "sso+mfa"
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	ua := r.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return &audit.Event{
		Time: h.deps.Now().UTC(), Interaction: interaction, Action: "E", Outcome: outcome, OutcomeDesc: desc,
		UserID: user, Roles: roles, SourceIP: ip, UserAgent: ua, AuthMethod: method, Allowed: outcome == audit.Success,
	}
}
