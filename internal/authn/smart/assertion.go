package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/phivault/phivault/internal/store"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxAssertion  = 5 * time.Minute // the latest exp a client may put in an assertion
)

// clientError is a client authentication failure: the message is meant
// for the client.
type clientError struct{ msg string }

func (e clientError) Error() string { return e.msg }

// authClient authenticates the caller of the token, revocation and
// introspection endpoints: client_secret_basic, private_key_jwt, or (when
// public is set) a public client naming itself by client_id. It parses the
// form (bounded) and writes the error response itself.
func (s *Server) authClient(w http.ResponseWriter, r *http.Request, public bool) (Client, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be an application/x-www-form-urlencoded form of at most 64 KiB")
		return Client{}, false
	}
	cl, err := s.identify(r, public)
	var ce clientError
	switch {
	case errors.As(err, &ce):
		if aerr := s.record(r, "client-auth-failed", r.PostForm.Get("grant_type"), false, "invalid_client: "+ce.msg, grant{ClientID: s.clientHint(r)}); aerr != nil {
			s.unavailable(w, aerr)
			return Client{}, false
		}
		oauthError(w, http.StatusUnauthorized, "invalid_client", ce.msg)
		return Client{}, false
	case err != nil:
		s.c.Log.Error("smart: client authentication", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return Client{}, false
	}
	return cl, true
}

func (s *Server) identify(r *http.Request, public bool) (Client, error) {
	ctx := r.Context()
	f := r.PostForm
	formID := f.Get("client_id")
	lookup := func(id string) (Client, error) {
		cl, err := s.clients.Get(ctx, id)
		if errors.Is(err, ErrNoClient) || (formID != "" && formID != id) {
			return Client{}, clientError{"unknown client or wrong credentials"}
		}
		return cl, err
	}
	if id, secret, ok := r.BasicAuth(); ok {
		if f.Has("client_assertion") || f.Has("client_secret") {
			return Client{}, clientError{"use exactly one client authentication method"}
		}
		id, err1 := url.QueryUnescape(id) // RFC 6749 2.3.1: form-encoded before Basic
		secret, err2 := url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, clientError{"malformed Basic credentials"}
		}
		cl, err := lookup(id)
		if err != nil {
			return Client{}, err
		}
		if cl.Type != Confidential || !cl.checkSecret(secret) {
			return Client{}, clientError{"unknown client or wrong credentials"}
		}
		return cl, nil
	}
	if f.Has("client_secret") {
		return Client{}, clientError{"client_secret_post is not supported; use client_secret_basic or private_key_jwt"}
	}
	if f.Has("client_assertion") || f.Has("client_assertion_type") {
		if f.Get("client_assertion_type") != assertionType {
			return Client{}, clientError{"client_assertion_type must be " + assertionType}
		}
		return s.verifyAssertion(ctx, f.Get("client_assertion"), formID)
	}
	if formID == "" {
		return Client{}, clientError{"client authentication is required"}
	}
	cl, err := lookup(formID)
	if err != nil {
		return Client{}, err
	}
	if cl.Type != Public || !public {
		return Client{}, clientError{"this client must authenticate (client_secret_basic or private_key_jwt)"}
	}
	return cl, nil
}

// clientHint names the client a failed authentication claimed to be, for
// the audit record: only an id that is registered, so that the log does
// not fill with whatever a caller typed.
func (s *Server) clientHint(r *http.Request) string {
	id := r.PostForm.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
	}
	if _, err := s.clients.Get(r.Context(), id); err != nil {
		return ""
	}
	return id
}

type assertionClaims struct {
	jwt.Claims
}

// verifyAssertion checks a private_key_jwt client assertion: RS384 or
// ES384 only (so "none", HS256 and every algorithm confusion are refused
// before any key is touched), signed by a key in the client's registered
// JWKS of the matching type, iss = sub = client id, aud = the token
// endpoint, exp present and at most 5 minutes ahead, and a jti never seen
// before (remembered until its exp).
func (s *Server) verifyAssertion(ctx context.Context, a, formID string) (Client, error) {
	if a == "" || len(a) > 16<<10 {
		return Client{}, clientError{"client_assertion is missing or too long"}
	}
	t, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.RS384, jose.ES384})
	if err != nil || len(t.Headers) != 1 {
		return Client{}, clientError{"client_assertion must be a JWT signed with RS384 or ES384"}
	}
	var unverified assertionClaims
	if err := t.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer == "" {
		return Client{}, clientError{"client_assertion has no issuer"}
	}
	cl, err := s.clients.Get(ctx, unverified.Issuer)
	if errors.Is(err, ErrNoClient) {
		return Client{}, clientError{"unknown client or wrong credentials"}
	}
	if err != nil {
		return Client{}, err
	}
	h := t.Headers[0]
	var c assertionClaims
	verified := false
	for _, k := range cl.keys() {
		if (h.KeyID != "" && k.KeyID != h.KeyID) || (k.Algorithm != "" && k.Algorithm != h.Algorithm) || !keyFits(k, h.Algorithm) {
			continue
		}
		if t.Claims(k.Key, &c) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Client{}, clientError{"client_assertion is not signed by a key registered for this client"}
	}
	now := s.c.Now()
	switch {
	case c.Issuer != cl.ID || c.Subject != cl.ID || (formID != "" && formID != cl.ID):
		return Client{}, clientError{"client_assertion iss and sub must both be the client id"}
	case !c.Audience.Contains(s.endpoint("token")):
		return Client{}, clientError{"client_assertion aud must be the token endpoint " + s.endpoint("token")}
	case c.Expiry == nil:
		return Client{}, clientError{"client_assertion has no exp"}
	case !now.Before(c.Expiry.Time()):
		return Client{}, clientError{"client_assertion has expired"}
	case c.Expiry.Time().After(now.Add(maxAssertion + leeway)):
		return Client{}, clientError{"client_assertion exp may be at most 5 minutes ahead"}
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(leeway)):
		return Client{}, clientError{"client_assertion is not valid yet"}
	case c.ID == "" || len(c.ID) > 256:
		return Client{}, clientError{"client_assertion needs a jti of at most 256 characters"}
	}
	key := hashName(prefixJTI, cl.ID+"\x00"+c.ID)
	err = s.v.put(ctx, key, revokedRec{Until: c.Expiry.Time().Add(leeway)}, true)
	if errors.Is(err, store.ErrExists) {
		return Client{}, clientError{"client_assertion jti was already used"}
	}
	if err != nil {
		return Client{}, err
	}
	return cl, nil
}

// keyFits reports whether k is the right kind of key for alg.
func keyFits(k jose.JSONWebKey, alg string) bool {
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS384) && pk.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == string(jose.ES384) && pk.Curve == elliptic.P384()
	}
	return false
}

// s256 is the PKCE S256 transform of a verifier.
func s256(verifier string) string {
	return base64.RawURLEncoding.EncodeToString(sha256Sum(verifier))
}

// validVerifier checks RFC 7636 4.1: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	return strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' || r == '~')
	}) < 0
}
