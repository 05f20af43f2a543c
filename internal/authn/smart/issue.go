package smart

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/phivault/phivault/internal/policy"
)

// ErrInvalidToken is returned by Check for any token that is malformed,
// forged, expired, revoked, or whose user or client is no longer valid;
// callers must not tell these apart to the client.
var ErrInvalidToken = errors.New("smart: invalid or expired token")

// grant is what an authorization decided; codes and refresh tokens carry
// it and every token issued from it repeats it.
type grant struct {
	ClientID string    `json:"clientId"`
	User     string    `json:"user,omitempty"` // empty for backend clients
	Backend  bool      `json:"backend,omitempty"`
	Scopes   []string  `json:"scopes"`
	Patient  string    `json:"patient,omitempty"`
	FHIRUser string    `json:"fhirUser,omitempty"` // "Practitioner/x" or "Patient/y"
	SID      string    `json:"sid"`                // token family
	Epoch    int       `json:"epoch"`
	AuthTime time.Time `json:"authTime,omitzero"`
	MFA      bool      `json:"mfa,omitempty"` // the user proved a second factor when authorizing
	Nonce    string    `json:"nonce,omitempty"`
	// Expires bounds the whole family: a refresh never extends it.
	Expires time.Time `json:"expires,omitzero"`
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Patient  string `json:"patient,omitempty"`
	SID      string `json:"sid"`
	Epoch    int    `json:"epoch"`
	Backend  bool   `json:"backend,omitempty"`
	MFA      bool   `json:"mfa,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
}

// tokenResponse is the token endpoint's answer (RFC 6749 5.1 plus SMART).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Patient      string `json:"patient,omitempty"`
	NeedBanner   *bool  `json:"need_patient_banner,omitempty"`
}

// issue signs an access token for g, with a new refresh token (stored
// hashed) when g holds offline_access or online_access, and an id_token
// when it holds openid.
func (s *Server) issue(ctx context.Context, g grant) (tokenResponse, error) {
	k, err := s.keys.current(ctx)
	if err != nil {
		return tokenResponse{}, err
	}
	now := s.c.Now()
	exp := now.Add(s.c.AccessTTL)
	c := accessClaims{
		Claims: jwt.Claims{Issuer: s.c.Issuer, Subject: g.User, Audience: jwt.Audience{s.base}, IssuedAt: jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(exp), ID: randomID(16)},
		ClientID: g.ClientID, Scope: strings.Join(g.Scopes, " "), Patient: g.Patient, SID: g.SID, Epoch: g.Epoch, Backend: g.Backend,
		MFA: g.MFA,
	}
	if !g.AuthTime.IsZero() {
		c.AuthTime = g.AuthTime.Unix()
	}
	if g.Backend {
		c.Subject = g.ClientID
	}
	at, err := jwt.Signed(k.signer).Claims(c).Serialize()
	if err != nil {
		return tokenResponse{}, err
	}
	resp := tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int(s.c.AccessTTL / time.Second), Scope: c.Scope}
	if g.Patient != "" {
		resp.Patient = g.Patient
		t := true
		resp.NeedBanner = &t
	}
	sc := g.Scopes
	if !g.Backend && (contains(sc, "offline_access") || contains(sc, "online_access")) {
		rt := randomID(32)
		if g.Expires.IsZero() {
			ttl := s.c.RefreshTTL
			if !contains(sc, "offline_access") {
				ttl = min(ttl, 12*s.c.AccessTTL)
			}
			g.Expires = now.Add(ttl)
		}
		if err := s.v.put(ctx, hashName(prefixRefresh, rt), refreshRec{Grant: g}, true); err != nil {
			return tokenResponse{}, err
		}
		resp.RefreshToken = rt
	}
	if !g.Backend && contains(sc, "openid") {
		id := map[string]any{"iss": s.c.Issuer, "sub": g.User, "aud": g.ClientID, "iat": now.Unix(), "exp": exp.Unix()}
		if g.Nonce != "" {
			id["nonce"] = g.Nonce
		}
		if !g.AuthTime.IsZero() {
			id["auth_time"] = g.AuthTime.Unix()
		}
		if g.FHIRUser != "" && contains(sc, "fhirUser") {
			id["fhirUser"] = s.base + "/" + g.FHIRUser
		}
		if resp.IDToken, err = jwt.Signed(k.idSign).Claims(id).Serialize(); err != nil {
			return tokenResponse{}, err
		}
	}
	return resp, nil
}

// Check validates an access token issued by this server and returns its
// principal: signature (ES256 only, known kid), issuer, audience (the
// FHIR base), lifetime with a small leeway, not revoked (by jti or
// family), and the user's account (or the backend client) still valid.
// Scopes are the granted scopes (never nil), Patient the launch patient.
func (s *Server) Check(token string) (policy.Principal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.verify(ctx, token)
	if err != nil {
		return policy.Principal{}, ErrInvalidToken
	}
	scopes := strings.Fields(c.Scope)
	if scopes == nil {
		scopes = []string{}
	}
	if c.Backend {
		cl, err := s.clients.Get(ctx, c.ClientID)
		if err != nil || cl.Type != Backend || c.Subject != cl.ID {
			return policy.Principal{}, ErrInvalidToken
		}
		return policy.Principal{UserID: cl.ID, Roles: []string{cl.Role}, ClientID: cl.ID, Scopes: scopes,
			Method: "smart", SessionID: c.SID}, nil
	}
	if _, err := s.clients.Get(ctx, c.ClientID); err != nil {
		return policy.Principal{}, ErrInvalidToken
	}
	p, err := s.c.Accounts.Valid(ctx, c.Subject, c.Epoch)
	if err != nil || p.UserID != c.Subject {
		return policy.Principal{}, ErrInvalidToken
	}
	p.ClientID, p.Scopes, p.Method, p.SessionID, p.MFA = c.ClientID, scopes, "smart", c.SID, c.MFA
	if c.AuthTime != 0 {
		p.AuthTime = time.Unix(c.AuthTime, 0)
	}
	if c.Patient != "" {
		p.Patient = c.Patient
	}
	return p, nil
}

// verify checks an access token's signature and claims and that it is
// not revoked; it does not look at the account.
func (s *Server) verify(ctx context.Context, token string) (accessClaims, error) {
	var c accessClaims
	if len(token) > 8192 {
		return c, ErrInvalidToken
	}
	sum := sha256.Sum256([]byte(token))
	c, ok := s.verified.Get(sum)
	if !ok {
		t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil || len(t.Headers) != 1 || t.Headers[0].ExtraHeaders[jose.HeaderType] != accessType {
			return c, ErrInvalidToken
		}
		pub, ok := s.keys.public(ctx, t.Headers[0].KeyID)
		if !ok {
			return c, ErrInvalidToken
		}
		if err := t.Claims(pub, &c); err != nil {
			return c, ErrInvalidToken
		}
		if c.Expiry == nil || c.ID == "" || c.SID == "" || c.ClientID == "" || c.Subject == "" {
			return c, ErrInvalidToken
		}
		s.verified.Put(sum, c)
	}
	err := c.ValidateWithLeeway(jwt.Expected{Issuer: s.c.Issuer, AnyAudience: jwt.Audience{s.base}, Time: s.c.Now()}, leeway)
	if err != nil || s.isRevoked(ctx, c.ID, c.SID) {
		return c, ErrInvalidToken
	}
	return c, nil
}

func contains(sc []string, name string) bool {
	for _, s := range sc {
		if s == name {
			return true
		}
	}
	return false
}
