package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/sso"
)

// ssoSecretEnv holds the OpenID Connect client secret (a secret: never in
// a file or a flag).
const ssoSecretEnv = "PHIVAULT_SSO_CLIENT_SECRET"

// ssoFile is the single sign-on configuration file given to serve with
// --sso-config (JSON). The client secret comes from PHIVAULT_SSO_CLIENT_SECRET.
type ssoFile struct {
	Name        string              `json:"name"` // the provider's name on the sign-in page
	Issuer      string              `json:"issuer"`
	ClientID    string              `json:"clientId"`
	RedirectURL string              `json:"redirectUrl"` // https://HOST/sso/callback
	Scopes      []string            `json:"scopes"`
	NameClaim   string              `json:"nameClaim"`
	RoleClaim   string              `json:"roleClaim"`
	RoleMap     map[string][]string `json:"roleMap"` // claim value -> phivault roles
}

// readSSOConfig reads and checks an --sso-config file. The login cookie
// key is derived from the store's index key (the same on every node of
// one store, and never written anywhere).
func (n *node) readSSOConfig(path string) (sso.Config, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sso.Config{}, "", fail(exitUsage, "cannot read the SSO configuration: "+err.Error(), "--sso-config takes a JSON file")
	}
	var f ssoFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return sso.Config{}, "", fail(exitUsage, "the SSO configuration is not valid JSON: "+err.Error(), "see docs/access.md for its fields")
	}
	key := append(n.barrier.Token("sso-cookie-key", "1"), n.barrier.Token("sso-cookie-key", "2")...)
	c := sso.Config{Issuer: f.Issuer, ClientID: f.ClientID, ClientSecret: account.Secret(os.Getenv(ssoSecretEnv)),
		RedirectURL: f.RedirectURL, Scopes: f.Scopes, NameClaim: f.NameClaim, RoleClaim: f.RoleClaim, RoleMap: f.RoleMap,
		CookieKey: account.Secret(key)}
	if err := c.Validate(); err != nil {
		return sso.Config{}, "", fail(exitUsage, "the SSO configuration is not valid: "+strings.ReplaceAll(err.Error(), "\n", "; "),
			"fix "+path+"; the client secret comes from "+ssoSecretEnv)
	}
	name := f.Name
	if name == "" {
		name = "single sign-on"
	}
	return c, name, nil
}

// ssoRoutes returns the single sign-on routes for c over the node's
// accounts and console sessions.
func (n *node) ssoRoutes(c sso.Config, a *access, log *slog.Logger) (map[string]http.Handler, error) {
	h, err := sso.New(c, sso.Deps{Accounts: a.accounts, Sessions: a.sessions, Audit: n.audit, Log: log})
	if err != nil {
		return nil, fmt.Errorf("single sign-on: %w", err)
	}
	return h.Routes(), nil
}
