// Package smart is phivault's SMART App Launch 2.x authorization server:
// discovery (.well-known/smart-configuration), the authorization-code flow
// with PKCE (S256 only, required for every client) and EHR or standalone
// patient launch, refresh tokens with rotation and reuse detection,
// Backend Services (client_credentials with private_key_jwt assertions,
// RS384/ES384), revocation (RFC 7009), introspection (RFC 7662), and the
// check of the access tokens it issues (ES256 JWTs signed with rotating
// keys).
//
// All state - clients, signing keys, codes, refresh tokens, launch
// contexts, revocations and seen assertion ids - is stored sealed by the
// barrier in store meta, so a restart keeps every revocation. Secrets
// (client secrets, codes, refresh tokens, launch ids) are stored and named
// only by their SHA-256 hashes.
package smart

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// Login is the console's session layer, consumed by the authorize
// endpoint. User returns the signed-in user of r (with Roles, Patient or
// Practitioner, MFA and a non-empty SessionID) or false; LoginURL returns
// where to send a browser to sign in and come back to next.
type Login interface {
	User(r *http.Request) (policy.Principal, bool)
	LoginURL(next string) string
}

// Accounts is the account directory (account.Directory). Valid checks
// that a user's account still allows the tokens issued under epoch (not
// disabled, epoch not moved on) and returns the user's current principal;
// any error refuses the token. Get returns the account, for the epoch a
// new grant is issued under. Both must be safe for concurrent use.
type Accounts interface {
	Valid(ctx context.Context, id string, epoch int) (policy.Principal, error)
	Get(ctx context.Context, id string) (account.Account, error)
}

// Config is what Open needs.
type Config struct {
	Store    store.Backend
	Barrier  *barrier.Barrier
	Issuer   string // public base URL of the server, e.g. "https://ehr.example.org" (FHIR base: Issuer+"/fhir")
	Login    Login
	Accounts Accounts
	Audit    Recorder // required: token issuance, refusals and revocations are audited
	Log      *slog.Logger

	AccessTTL   time.Duration // access and id token lifetime (default 5m)
	RefreshTTL  time.Duration // refresh token lifetime (default 30 days for offline_access, the access lifetime x 12 for online_access)
	RotateEvery time.Duration // signing key rotation period (default 24h)
	Now         func() time.Time
}

// Server is the authorization server. It is safe for concurrent use.
type Server struct {
	c        Config
	v        vault
	clients  *Clients
	keys     *keyring
	csrf     []byte
	base     string                       // FHIR base URL, the audience of every access token
	verified authn.Verified[accessClaims] // claims of verified access tokens, by the token's SHA-256

	mu          sync.Mutex
	revoked     map[string]time.Time // jti or "sid:"+sid -> when the entry may be forgotten
	revokedLoad time.Time
	swept       time.Time // last sweep started
}

const leeway = 30 * time.Second

// Open loads (or creates) the server's keys and state.
func Open(ctx context.Context, c Config) (*Server, error) {
	var problems []error
	if c.Store == nil || c.Barrier == nil {
		problems = append(problems, errors.New("smart: Store and Barrier are required"))
	}
	if !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") || strings.HasSuffix(c.Issuer, "/") {
		problems = append(problems, errors.New("smart: Issuer must be an absolute URL without a trailing slash"))
	}
	if c.Login == nil || c.Accounts == nil || c.Audit == nil {
		problems = append(problems, errors.New("smart: Login, Accounts and Audit are required"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AccessTTL <= 0 {
		c.AccessTTL = 5 * time.Minute
	}
	if c.RefreshTTL <= 0 {
		c.RefreshTTL = 30 * 24 * time.Hour
	}
	if c.RotateEvery <= 0 {
		c.RotateEvery = 24 * time.Hour
	}
	v := vault{c.Store, c.Barrier}
	s := &Server{c: c, v: v, clients: NewClients(c.Store, c.Barrier), base: c.Issuer + "/fhir", revoked: map[string]time.Time{}}
	s.clients.now = c.Now
	s.keys = &keyring{v: v, every: c.RotateEvery, lifetime: c.AccessTTL + 2*leeway, now: c.Now}
	if err := s.keys.rotate(ctx); err != nil {
		return nil, err
	}
	var key []byte
	if err := v.get(ctx, metaCSRF, &key); notFound(err) {
		key = []byte(randomID(32))
		if err := v.put(ctx, metaCSRF, key, true); err != nil && !errors.Is(err, store.ErrExists) {
			return nil, err
		}
		if err := v.get(ctx, metaCSRF, &key); err != nil { // another node may have won
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	s.csrf = key
	if err := s.loadRevoked(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Clients returns the client registry.
func (s *Server) Clients() *Clients { return s.clients }

// Routes returns the public routes, by ServeMux pattern, for
// server.Config.Routes.
func (s *Server) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /fhir/.well-known/smart-configuration": cors(s.discovery),
		"GET /oauth/jwks":        cors(s.jwks),
		"GET /oauth/authorize":   http.HandlerFunc(s.authorize),
		"POST /oauth/authorize":  http.HandlerFunc(s.authorize),
		"POST /oauth/launch":     http.HandlerFunc(s.launch),
		"POST /oauth/token":      cors(s.token),
		"OPTIONS /oauth/token":   cors(preflight),
		"POST /oauth/revoke":     cors(s.revoke),
		"OPTIONS /oauth/revoke":  cors(preflight),
		"POST /oauth/introspect": http.HandlerFunc(s.introspect),
	}
}

// cors lets browser apps (public SMART clients) read discovery, keys and
// token responses from another origin. These endpoints use no cookies, so
// any origin may call them; the consent and launch endpoints, which do,
// are not opened this way.
func cors(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h(w, r)
	})
}

func preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Methods", "POST")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) endpoint(name string) string { return s.c.Issuer + "/oauth/" + name }

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.c.Issuer,
		"jwks_uri":                              s.endpoint("jwks"),
		"authorization_endpoint":                s.endpoint("authorize"),
		"token_endpoint":                        s.endpoint("token"),
		"revocation_endpoint":                   s.endpoint("revoke"),
		"introspection_endpoint":                s.endpoint("introspect"),
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported": []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access",
			"patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs", "system/*.rs", "patient/*.read", "user/*.read", "system/*.read"},
		"response_types_supported":                       []string{"code"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"id_token_signing_alg_values_supported":          []string{"ES256"},
		"capabilities": []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
			"client-confidential-asymmetric", "context-ehr-patient", "context-standalone-patient", "permission-offline",
			"permission-online", "permission-patient", "permission-user", "permission-v1", "permission-v2",
			"sso-openid-connect", "authorize-post"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	if _, err := s.keys.current(r.Context()); err != nil { // rotates when due
		s.c.Log.Error("smart: signing keys", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.keys.jwks())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 section 5.2 error response.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="phivault"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
