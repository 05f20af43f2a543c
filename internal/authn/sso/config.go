// Package sso signs console users in through an external OpenID Connect
// identity provider (authorization code flow with PKCE, go-oidc for
// discovery and ID token verification).
//
// What it promises:
//   - The login state (state, nonce, PKCE verifier) lives in a short-lived,
//     HttpOnly, Secure, SameSite=Lax cookie signed with HMAC-SHA256; an
//     unsigned, altered or expired cookie is refused, and each state is
//     accepted once per process (the provider's single-use codes cover the
//     other nodes).
//   - The ID token is verified for signature, issuer, audience (and azp
//     when there are several audiences), expiry and nonce before any claim
//     is used.
//   - Accounts are keyed "sso." + a hash of issuer and subject, so they are
//     stable across renames at the provider and distinct per provider. The
//     account's roles follow the provider's claim at every login; a user
//     with no mapped role, or whose mapped roles mix administrator with a
//     patient-data role, is refused (and an existing account loses its
//     roles). A disabled phivault account stays disabled.
//   - Every outcome is audited ("login" or "login-failed" with a reason
//     category); no token, code or secret reaches the log, the audit record
//     or the error page.
package sso

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
)

// CallbackPath is the path of the redirect URI registered at the provider.
const CallbackPath = "/sso/callback"

// Config is the single sign-on configuration. The zero values of optional
// fields pick the documented defaults.
type Config struct {
	// Issuer is the provider's issuer URL (https), as in its discovery
	// document.
	Issuer string
	// ClientID and ClientSecret identify phivault at the provider
	// (confidential client; the secret comes from an environment variable).
	ClientID     string
	ClientSecret account.Secret
	// RedirectURL is phivault's public callback URL, ending in CallbackPath.
	RedirectURL string
	// Scopes are requested besides "openid"; default "profile", "email".
	// Some providers need a "groups" scope to release the role claim.
	Scopes []string
	// NameClaim names the claim used as the account's display name; default
	// "name", falling back to "preferred_username" and then "email".
	NameClaim string
	// RoleClaim is the ID token claim (string or array of strings) whose
	// values RoleMap translates; default "groups".
	RoleClaim string
	// RoleMap maps a RoleClaim value to phivault roles (from account.Roles).
	// Values not in the map grant nothing; a user granted nothing is refused.
	RoleMap map[string][]string
	// CookieKey signs the login cookie: at least 32 random bytes. All nodes
	// behind one address need the same key.
	CookieKey account.Secret
	// LoginTimeout bounds the time from /sso/login to the callback; default
	// 10 minutes.
	LoginTimeout time.Duration
	// Landing is where a successful login goes when no local "next" path was
	// given; default "/console/".
	Landing string
}

// MFAMethods are the RFC 8176 "amr" values that count as a second factor:
// a login whose ID token names any of them starts an MFA session.
var MFAMethods = []string{"mfa", "otp", "hwk", "swk", "pop"}

// patientDataRoles are the roles that reach patient data; administrator
// may not be held with any of them (separate administrator identities, the
// same rule as for local accounts).
var patientDataRoles = []string{"physician", "nurse", "front-desk", "billing", "researcher", "patient"}

// withDefaults returns c with the defaults filled in.
func (c Config) withDefaults() Config {
	if c.Scopes == nil {
		c.Scopes = []string{"profile", "email"}
	}
	if c.NameClaim == "" {
		c.NameClaim = "name"
	}
	if c.RoleClaim == "" {
		c.RoleClaim = "groups"
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = 10 * time.Minute
	}
	if c.Landing == "" {
		c.Landing = "/console/"
	}
	return c
}

// Validate reports every problem with c at once, or nil.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sso: "+format, a...)) }
	if u, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		bad("issuer must be an https URL")
	}
	if c.ClientID == "" {
		bad("client id is required")
	}
	if len(c.ClientSecret) == 0 {
		bad("client secret is required")
	}
	if u, err := url.Parse(c.RedirectURL); c.RedirectURL == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.Path != CallbackPath || u.RawQuery != "" || u.Fragment != "" {
		bad("redirect URL must be an https URL ending in %s", CallbackPath)
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			bad("scope %q is not a valid scope token", s)
		}
	}
	if len(c.RoleMap) == 0 {
		bad("role map is empty: no one could sign in")
	}
	for _, v := range slices.Sorted(maps.Keys(c.RoleMap)) {
		roles := c.RoleMap[v]
		if v == "" {
			bad("role map: empty claim value")
		}
		if len(roles) == 0 {
			bad("role map: %q maps to no role", v)
		}
		for _, r := range roles {
			if !slices.Contains(account.Roles, r) {
				bad("role map: %q maps to unknown role %q", v, r)
			}
		}
		if err := checkRoleMix(roles); err != nil {
			bad("role map: %q: %v", v, err)
		}
	}
	if len(c.CookieKey) < 32 {
		bad("cookie key must be at least 32 bytes")
	}
	if c.LoginTimeout < 0 || c.LoginTimeout > time.Hour {
		bad("login timeout must be between 0 and 1h")
	}
	if !localPath(c.Landing) {
		bad("landing must be a local path starting with /")
	}
	return errors.Join(errs...)
}

var errRoleMix = errors.New("the administrator role may not be held with a patient-data role")

// checkRoleMix enforces separate administrator identities.
func checkRoleMix(roles []string) error {
	if !slices.Contains(roles, "administrator") {
		return nil
	}
	for _, r := range roles {
		if slices.Contains(patientDataRoles, r) {
			return errRoleMix
		}
	}
	return nil
}

// mapRoles translates the role claim's values into sorted, distinct
// phivault roles. Unknown values grant nothing.
func (c Config) mapRoles(values []string) []string {
	var roles []string
	for _, v := range values {
		for _, r := range c.RoleMap[v] {
			if slices.Contains(account.Roles, r) && !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	slices.Sort(roles)
	return roles
}

// claimStrings reads a claim that is a string or an array of strings
// (providers differ). Anything else yields nil.
func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// mfaFromAMR reports whether an ID token's "amr" values include a second
// factor (RFC 8176: mfa, otp, hwk, swk, pop).
func mfaFromAMR(amr []string) bool {
	for _, m := range amr {
		if slices.Contains(MFAMethods, m) {
			return true
		}
	}
	return false
}

// localPath reports whether p is a path on this server (no scheme, no
// host, no protocol-relative "//" or "/\" prefix), safe to redirect to.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || len(p) > 1024 {
		return false
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}
