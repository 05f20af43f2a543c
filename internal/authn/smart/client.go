package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// Client types.
const (
	Public       = "public"       // a browser or native app; PKCE only
	Confidential = "confidential" // a server-side app with a secret or a key
	Backend      = "backend"      // a system acting without a user (SMART Backend Services)
)

// ErrNoClient is returned for an unknown client id.
var ErrNoClient = errors.New("smart: no such client")

// Client is a registered app. Secrets are kept only as SHA-256 hashes of
// 32 random bytes (high entropy, so a fast hash is enough).
type Client struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	RedirectURIs []string        `json:"redirectUris,omitempty"` // exact match
	Scopes       []string        `json:"scopes"`
	SecretHash   []byte          `json:"secretHash,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"` // public keys for private_key_jwt
	Role         string          `json:"role,omitempty"` // backend: the role the system acts as
	Created      time.Time       `json:"created"`
}

// Secret is a client secret; it prints as **redacted**.
type Secret string

func (Secret) String() string       { return "**redacted**" }
func (Secret) GoString() string     { return "**redacted**" }
func (Secret) LogValue() slog.Value { return slog.StringValue("**redacted**") }

// Reveal returns the secret text, to hand it to its owner once.
func (s Secret) Reveal() string { return string(s) }

// Clients is the client registry, kept sealed in store meta with a
// short-lived in-memory cache (so a client removed by another node stops
// working within cacheTTL). It is safe for concurrent use.
type Clients struct {
	v vault

	mu     sync.Mutex
	cache  map[string]Client
	loaded time.Time
	now    func() time.Time
}

const cacheTTL = 3 * time.Second

// NewClients returns the registry stored in st, sealed by b.
func NewClients(st store.Backend, b *barrier.Barrier) *Clients {
	return &Clients{v: vault{st, b}, now: time.Now}
}

var roleName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,40}$`)

// Add validates c, gives it a fresh id and stores it. For a confidential
// client it returns the secret, which is shown once and never stored.
func (cs *Clients) Add(ctx context.Context, c Client) (Client, Secret, error) {
	if err := validate(&c); err != nil {
		return Client{}, "", err
	}
	c.ID = clientID()
	c.Created = cs.now().UTC()
	var secret Secret
	if c.Type == Confidential && len(c.JWKS) == 0 {
		secret = Secret(randomID(32))
		h := sha256.Sum256([]byte(secret))
		c.SecretHash = h[:]
	}
	if err := cs.v.put(ctx, prefixClient+c.ID, c, true); err != nil {
		return Client{}, "", err
	}
	cs.invalidate()
	return c, secret, nil
}

// Remove deletes a client; its tokens stop working at their next check.
func (cs *Clients) Remove(ctx context.Context, id string) error {
	if _, err := cs.Get(ctx, id); err != nil {
		return err
	}
	err := cs.v.st.Update(ctx, func(tx store.Writer) error { return tx.DeleteMeta(prefixClient + id) })
	cs.invalidate()
	return err
}

// List returns every client, by name.
func (cs *Clients) List(ctx context.Context) ([]Client, error) {
	m, err := cs.all(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make([]Client, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name+out[i].ID < out[j].Name+out[j].ID })
	return out, nil
}

// Get returns a client, or ErrNoClient.
func (cs *Clients) Get(ctx context.Context, id string) (Client, error) {
	m, err := cs.all(ctx, false)
	if err != nil {
		return Client{}, err
	}
	c, ok := m[id]
	if !ok {
		if m, err = cs.all(ctx, true); err != nil {
			return Client{}, err
		}
		if c, ok = m[id]; !ok {
			return Client{}, ErrNoClient
		}
	}
	return c, nil
}

func (cs *Clients) invalidate() {
	cs.mu.Lock()
	cs.cache = nil
	cs.mu.Unlock()
}

func (cs *Clients) all(ctx context.Context, fresh bool) (map[string]Client, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !fresh && cs.cache != nil && cs.now().Sub(cs.loaded) < cacheTTL {
		return cs.cache, nil
	}
	recs, err := list[Client](ctx, cs.v, prefixClient)
	if err != nil {
		return nil, err
	}
	m := make(map[string]Client, len(recs))
	for _, c := range recs {
		m[c.ID] = c
	}
	cs.cache, cs.loaded = m, cs.now()
	return m, nil
}

// checkSecret compares a presented secret with the stored hash in
// constant time.
func (c Client) checkSecret(secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return len(c.SecretHash) == sha256.Size && subtle.ConstantTimeCompare(h[:], c.SecretHash) == 1
}

func (c Client) scopes() []Scope {
	sc, _ := ParseScopes(strings.Join(c.Scopes, " ")) // validated when added
	return sc
}

func (c Client) keys() []jose.JSONWebKey {
	var set jose.JSONWebKeySet
	if json.Unmarshal(c.JWKS, &set) != nil {
		return nil
	}
	return set.Keys
}

func validate(c *Client) error {
	var problems []error
	bad := func(f string, a ...any) { problems = append(problems, fmt.Errorf(f, a...)) }
	if c.Name == "" || len(c.Name) > 200 {
		bad("a client needs a name of at most 200 characters")
	}
	if !slices.Contains([]string{Public, Confidential, Backend}, c.Type) {
		bad("the client type must be public, confidential or backend")
	}
	sc, err := ParseScopes(strings.Join(c.Scopes, " "))
	if err != nil {
		bad("%v", err)
	}
	if len(sc) == 0 {
		bad("a client needs at least one scope")
	}
	c.Scopes = names(sc)
	for _, s := range sc {
		switch {
		case c.Type == Backend && s.Context != "system":
			bad("a backend client may hold only system/ scopes, not %s", quoteSafe(s.Name))
		case c.Type != Backend && s.Context == "system":
			bad("only backend clients may hold system/ scopes")
		}
	}
	if c.Type == Backend {
		if len(c.RedirectURIs) > 0 {
			bad("a backend client has no redirect URIs")
		}
		if c.Role == "" || !roleName.MatchString(c.Role) || c.Role == "administrator" {
			bad("a backend client needs a role (e.g. device or vendor; not administrator)")
		}
	} else {
		if c.Role != "" {
			bad("only backend clients have a role; apps act for their user")
		}
		if len(c.RedirectURIs) == 0 {
			bad("an app needs at least one redirect URI")
		}
		for _, u := range c.RedirectURIs {
			if !validRedirect(u) {
				bad("redirect URI %s must be an absolute https URL (or http on localhost) without a fragment", quoteSafe(u))
			}
		}
	}
	switch {
	case len(c.JWKS) > 0:
		if c.Type == Public {
			bad("a public client has no keys")
		}
		if err := validJWKS(c.JWKS); err != nil {
			bad("%v", err)
		}
	case c.Type == Backend:
		bad("a backend client needs a JWKS with its public key (RS384 or ES384)")
	}
	return errors.Join(problems...)
}

func validRedirect(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil || len(s) > 2000 {
		return false
	}
	h := u.Hostname()
	return u.Scheme == "https" || u.Scheme == "http" && (h == "localhost" || h == "127.0.0.1" || h == "::1")
}

// validJWKS accepts only public signing keys usable with RS384 (RSA of at
// least 2048 bits) or ES384 (P-384).
func validJWKS(raw []byte) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("the JWKS is not valid JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("the JWKS holds no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return errors.New("the JWKS must hold public keys only (never register a private key)")
		}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < 2048 || (k.Algorithm != "" && k.Algorithm != string(jose.RS384)) {
				return errors.New("RSA keys must have at least 2048 bits and alg RS384")
			}
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P384() || (k.Algorithm != "" && k.Algorithm != string(jose.ES384)) {
				return errors.New("EC keys must be on P-384 with alg ES384")
			}
		default:
			return errors.New("only RSA (RS384) and EC P-384 (ES384) keys are accepted")
		}
	}
	return nil
}

// clientID returns a new client id: 128 random bits in lower-case base32,
// so that it never starts with "-" (operators type it on command lines)
// and survives case-folding systems.
func clientID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
