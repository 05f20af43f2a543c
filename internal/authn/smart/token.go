package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"
)

// codeRec is a stored authorization code (named by its hash). Used marks
// a redeemed code: a second redemption revokes the family it started.
type codeRec struct {
	Grant       grant     `json:"grant"`
	RedirectURI string    `json:"redirectUri"`
	Challenge   string    `json:"challenge"`
	Expires     time.Time `json:"expires"`
	Used        bool      `json:"used,omitempty"`
}

const codeTTL = 60 * time.Second

// grantError is a token endpoint refusal told to the client.
type grantError struct{ code, msg string }

func (e grantError) Error() string { return e.code + ": " + e.msg }

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// token serves POST /oauth/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.authClient(w, r, true)
	if !ok {
		return
	}
	s.maybeSweep()
	f := r.PostForm
	var g grant
	var err error
	switch f.Get("grant_type") {
	case "authorization_code":
		g, err = s.redeemCode(r.Context(), cl, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"))
	case "refresh_token":
		g, err = s.redeemRefresh(r.Context(), cl, f.Get("refresh_token"), f.Get("scope"), f.Has("scope"))
	case "client_credentials":
		g, err = s.backendGrant(cl, f.Get("scope"), f.Has("client_assertion"))
	default:
		err = grantError{"unsupported_grant_type", "grant_type must be authorization_code, refresh_token or client_credentials"}
	}
	var resp tokenResponse
	if err == nil {
		resp, err = s.issue(r.Context(), g)
	}
	var ge grantError
	switch {
	case errors.As(err, &ge):
		if aerr := s.record(r, "token-refused", f.Get("grant_type"), false, ge.code+": "+ge.msg, grant{ClientID: cl.ID}); aerr != nil {
			s.unavailable(w, aerr)
			return
		}
		oauthError(w, http.StatusBadRequest, ge.code, ge.msg)
	case err != nil:
		s.unavailable(w, err)
	default:
		if err := s.record(r, "token-issue", f.Get("grant_type"), true, "scope: "+resp.Scope, g); err != nil {
			s.unavailable(w, err)
			return
		}
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, resp)
	}
}

// unavailable answers 503: the store or the audit log failed.
func (s *Server) unavailable(w http.ResponseWriter, err error) {
	s.c.Log.Error("smart: token endpoint", "err", err)
	oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
}

var errBadCode = grantError{"invalid_grant", "the code is invalid, expired or already used"}

func (s *Server) redeemCode(ctx context.Context, cl Client, code, redirect, verifier string) (grant, error) {
	if code == "" || len(code) > 256 {
		return grant{}, errBadCode
	}
	rec, fresh, err := consume(ctx, s.v, hashName(prefixCode, code),
		func(c *codeRec) bool { return c.Used }, func(c *codeRec) { c.Used = true })
	switch {
	case notFound(err):
		return grant{}, errBadCode
	case err != nil:
		return grant{}, err
	case !fresh:
		// RFC 6749 4.1.2: a code used twice revokes what it issued.
		if err := s.revokeFamily(ctx, rec.Grant.SID, rec.Grant.Expires); err != nil {
			return grant{}, err
		}
		return grant{}, errBadCode
	}
	g := rec.Grant
	if g.ClientID != cl.ID || !s.c.Now().Before(rec.Expires) {
		return grant{}, errBadCode
	}
	if redirect != rec.RedirectURI {
		return grant{}, grantError{"invalid_grant", "redirect_uri does not match the authorization request"}
	}
	if !validVerifier(verifier) || subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(rec.Challenge)) != 1 {
		return grant{}, grantError{"invalid_grant", "code_verifier does not match the code_challenge"}
	}
	if _, err := s.c.Accounts.Valid(ctx, g.User, g.Epoch); err != nil {
		return grant{}, grantError{"invalid_grant", "the user's account no longer allows this grant"}
	}
	return g, nil
}

var errBadRefresh = grantError{"invalid_grant", "the refresh token is invalid, expired, revoked or already used"}

func (s *Server) redeemRefresh(ctx context.Context, cl Client, tok, scope string, narrow bool) (grant, error) {
	if tok == "" || len(tok) > 256 {
		return grant{}, errBadRefresh
	}
	rec, fresh, err := consume(ctx, s.v, hashName(prefixRefresh, tok),
		func(r *refreshRec) bool { return r.Used }, func(r *refreshRec) { r.Used = true })
	switch {
	case notFound(err):
		return grant{}, errBadRefresh
	case err != nil:
		return grant{}, err
	case !fresh:
		// Reuse of a rotated token: someone holds a copy. End the family.
		if err := s.revokeFamily(ctx, rec.Grant.SID, rec.Grant.Expires); err != nil {
			return grant{}, err
		}
		return grant{}, errBadRefresh
	}
	g := rec.Grant
	if g.ClientID != cl.ID || !s.c.Now().Before(g.Expires) || s.isRevoked(ctx, "", g.SID) {
		return grant{}, errBadRefresh
	}
	if _, err := s.c.Accounts.Valid(ctx, g.User, g.Epoch); err != nil {
		return grant{}, errBadRefresh
	}
	if narrow {
		want, err := ParseScopes(scope)
		if err != nil {
			return grant{}, grantError{"invalid_scope", err.Error()}
		}
		have, _ := ParseScopes(strings.Join(g.Scopes, " "))
		if name, ok := coveredBy(want, have); !ok {
			return grant{}, grantError{"invalid_scope", "scope " + quoteSafe(name) + " was not granted"}
		}
		g.Scopes = names(want)
	}
	return g, nil
}

// backendGrant serves SMART Backend Services: only backend clients, and
// only after a private_key_jwt assertion.
func (s *Server) backendGrant(cl Client, scope string, asserted bool) (grant, error) {
	if cl.Type != Backend || !asserted {
		return grant{}, grantError{"unauthorized_client", "client_credentials is for backend clients authenticating with private_key_jwt"}
	}
	want, err := ParseScopes(scope)
	if err != nil {
		return grant{}, grantError{"invalid_scope", err.Error()}
	}
	if len(want) == 0 {
		return grant{}, grantError{"invalid_scope", "scope is required (system/ scopes)"}
	}
	if name, ok := coveredBy(want, cl.scopes()); !ok {
		return grant{}, grantError{"invalid_scope", "scope " + quoteSafe(name) + " is not registered for this client"}
	}
	return grant{ClientID: cl.ID, Backend: true, Scopes: names(want), SID: randomID(12)}, nil
}
