package sso

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
)

// Accounts is the account directory as single sign-on needs it.
// Implementations are safe for concurrent use. Get returns an error
// matching account.ErrNotFound for an unknown id; Create returns one
// matching account.ErrExists if the id is taken. An empty password means
// the account has none (it signs in only through the provider). "by" names
// who made the change, for the account's own audit trail.
type Accounts interface {
	Get(ctx context.Context, id string) (account.Account, error)
	CreateExternal(ctx context.Context, a account.Account, by string) error
	SetRoles(ctx context.Context, id string, roles []string, by string) error
}

// Sessions starts a console session for an authenticated user: it sets
// the session cookie on w and records the session. method is "sso"; mfa
// says whether the provider proved a second factor.
type Sessions interface {
	Start(w http.ResponseWriter, r *http.Request, user string, method string, mfa bool) error
}

// Auditor durably records an audit event; *audit.Log implements it. An
// error means the event is not durable.
type Auditor interface {
	Record(ctx context.Context, e *audit.Event) error
}

// Deps are the services a Handler uses.
type Deps struct {
	Accounts Accounts
	Sessions Sessions
	Audit    Auditor
	Log      *slog.Logger
	// HTTPClient reaches the provider (discovery, keys, token endpoint);
	// nil: a client with a 15-second timeout.
	HTTPClient *http.Client
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Handler serves /sso/login and /sso/callback. It is safe for concurrent
// use. Provider discovery happens on first use and is retried on the next
// request while it fails, so phivault starts even when the provider is
// down.
type Handler struct {
	cfg    Config
	deps   Deps
	cookie cookieSigner
	used   usedStates

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// New returns a Handler for cfg, or the configuration's problems.
func New(cfg Config, deps Deps) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Accounts == nil || deps.Sessions == nil || deps.Audit == nil {
		return nil, errors.New("sso: accounts, sessions and audit are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Handler{
		cfg:    cfg.withDefaults(),
		deps:   deps,
		cookie: newCookieSigner(cfg.CookieKey),
		used:   usedStates{max: 1 << 16},
	}, nil
}

// Routes returns the handler's routes for server.Config.Routes.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /sso/login":      http.HandlerFunc(h.login),
		"GET " + CallbackPath: http.HandlerFunc(h.callback),
	}
}

// AccountID returns the phivault account id for a provider's subject.
func AccountID(issuer, subject string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return "sso." + base64.RawURLEncoding.EncodeToString(sum[:16])
}

func (h *Handler) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, h.deps.HTTPClient)
}

// discover returns the provider and verifier, discovering them once.
func (h *Handler) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.provider != nil {
		return h.provider, h.verifier, nil
	}
	// The provider keeps the client (not the request's deadline) for its
	// key set, so keys are fetched with the configured client later too.
	p, err := oidc.NewProvider(h.ctx(ctx), h.cfg.Issuer)
	if err != nil {
		return nil, nil, err
	}
	h.provider = p
	h.verifier = p.Verifier(&oidc.Config{ClientID: h.cfg.ClientID, Now: h.deps.Now})
	return h.provider, h.verifier, nil
}

func (h *Handler) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     h.cfg.ClientID,
		ClientSecret: string(h.cfg.ClientSecret.Reveal()),
		Endpoint:     p.Endpoint(),
		RedirectURL:  h.cfg.RedirectURL,
		Scopes:       append([]string{oidc.ScopeOpenID}, h.cfg.Scopes...),
	}
}

// login starts the authorization code flow: it remembers state, nonce and
// PKCE verifier in the signed cookie and sends the browser to the
// provider. An optional "next" query parameter names a local path to land
// on afterwards.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.discover(r.Context())
	if err != nil {
		h.deps.Log.Warn("sso: provider discovery failed", "err", err)
		h.page(w, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a moment.")
		return
	}
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = h.cfg.Landing
	}
	now := h.deps.Now()
	st := loginState{
		State:    randomToken(),
		Nonce:    randomToken(),
		Verifier: oauth2.GenerateVerifier(),
		Expires:  now.Add(h.cfg.LoginTimeout).Unix(),
		Next:     next,
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: h.cookie.seal(st), Path: "/",
		MaxAge: int(h.cfg.LoginTimeout / time.Second), HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, h.oauth(p).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// page writes a small HTML error page with a generic message.
func (h *Handler) page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>phivault sign-in</title></head>\n<body><h1>Sign-in failed</h1><p>%s</p><p><a href=\"/sso/login\">Sign in again</a></p></body></html>\n", msg)
}
