// Package authn turns credentials into a policy.Principal. This first part
// holds operator bearer tokens: minted through the local operator path
// (`phivault token`, `init`, `demo`), signed with HMAC-SHA256 under a key
// that is stored sealed by the barrier, short-lived, and checked in
// constant time.
package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/b64url"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// ErrInvalidToken is returned for any token that is malformed, forged or
// expired; callers must not tell these apart to the client.
var ErrInvalidToken = errors.New("authn: invalid or expired token")

const (
	tokenPrefix  = "pv1."
	tokenKeyMeta = "authn/token-key"
	tokenKeyName = "system"
	maxTTL       = 30 * 24 * time.Hour
)

// Token is a bearer token. It prints as **redacted**.
type Token string

func (Token) String() string   { return "**redacted**" }
func (Token) GoString() string { return "**redacted**" }

// MarshalJSON and LogValue keep the token out of JSON and log/slog output
// (both would otherwise print the underlying string).
func (Token) MarshalJSON() ([]byte, error) { return []byte(`"**redacted**"`), nil }
func (Token) LogValue() slog.Value         { return slog.StringValue("**redacted**") }

// Reveal returns the token text, for handing it to its owner.
func (t Token) Reveal() string { return string(t) }

type claims struct {
	Sub   string   `json:"sub"`
	Roles []string `json:"roles"`
	Iat   int64    `json:"iat"`
	Exp   int64    `json:"exp"`
	Jti   string   `json:"jti"`
	Epoch int      `json:"ep,omitempty"` // the account's revocation epoch at minting
}

// Tokens mints and checks operator tokens. It is safe for concurrent use.
type Tokens struct {
	key []byte
	now func() time.Time
	// decoded remembers a token's claims by its verified MAC: decoding
	// the JSON claims cost more than checking the MAC.
	decoded Verified[claims]
}

// OpenTokens loads (or creates on first use) the token signing key, stored
// in st sealed by b.
func OpenTokens(ctx context.Context, st store.Backend, b *barrier.Barrier) (*Tokens, error) {
	aad := barrier.Context("authn", tokenKeyMeta)
	var sealed []byte
	err := st.View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(tokenKeyMeta)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		key := make([]byte, 32)
		rand.Read(key)
		s, err := b.Seal(ctx, tokenKeyName, aad, key)
		if err != nil {
			return nil, err
		}
		err = st.Update(ctx, func(tx store.Writer) error {
			if v, err := tx.Meta(tokenKeyMeta); err == nil {
				s = v // another process created it first
				return nil
			}
			return tx.CreateMeta(tokenKeyMeta, s)
		})
		if err != nil {
			return nil, err
		}
		sealed = s
	} else if err != nil {
		return nil, err
	}
	key, err := b.Open(ctx, aad, sealed)
	if err != nil {
		return nil, fmt.Errorf("authn: token key: %w", err)
	}
	return &Tokens{key: key, now: time.Now}, nil
}

// Mint returns a token for user with roles, valid for ttl (at most 30 days).
func (t *Tokens) Mint(user string, roles []string, ttl time.Duration) (Token, time.Time, error) {
	return t.MintAccount(user, roles, 0, ttl)
}

// MintAccount is Mint for a user account: the token records the account's
// revocation epoch, so disabling or revoking the account ends it.
func (t *Tokens) MintAccount(user string, roles []string, epoch int, ttl time.Duration) (Token, time.Time, error) {
	if user == "" || len(roles) == 0 {
		return "", time.Time{}, errors.New("authn: a token needs a user and at least one role")
	}
	if ttl <= 0 || ttl > maxTTL {
		return "", time.Time{}, fmt.Errorf("authn: token lifetime must be between 1s and %s", maxTTL)
	}
	now := t.now()
	jti := make([]byte, 12)
	rand.Read(jti)
	c := claims{Sub: user, Roles: roles, Iat: now.Unix(), Exp: now.Add(ttl).Unix(), Jti: base64.RawURLEncoding.EncodeToString(jti), Epoch: epoch}
	payload, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return Token(tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(t.mac(p))), now.Add(ttl), nil
}

func (t *Tokens) mac(payload string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(tokenPrefix + payload))
	return m.Sum(nil)
}

// Check verifies a token and returns its principal.
func (t *Tokens) Check(tok string) (policy.Principal, error) {
	p, _, err := t.check(tok)
	return p, err
}

// check verifies a token and returns its principal and account epoch.
func (t *Tokens) check(tok string) (policy.Principal, int, error) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(tok) > 4096 {
		return policy.Principal{}, 0, ErrInvalidToken
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return policy.Principal{}, 0, ErrInvalidToken
	}
	// Canonical: a lax decoder skips line breaks and the last character's
	// padding bits, so several spellings of one signature would pass.
	got, err := b64url.Decode(sig)
	if err != nil || !hmac.Equal(got, t.mac(p)) {
		return policy.Principal{}, 0, ErrInvalidToken
	}
	key := [32]byte(got) // the MAC is verified, so exactly 32 bytes
	c, ok := t.decoded.Get(key)
	if !ok {
		raw, err := b64url.Decode(p)
		if err != nil {
			return policy.Principal{}, 0, ErrInvalidToken
		}
		if err := json.Unmarshal(raw, &c); err != nil || c.Sub == "" {
			return policy.Principal{}, 0, ErrInvalidToken
		}
		t.decoded.Put(key, c)
	}
	if t.now().Unix() >= c.Exp {
		return policy.Principal{}, 0, ErrInvalidToken
	}
	return policy.Principal{UserID: c.Sub, Roles: slices.Clone(c.Roles), Method: "operator-token", SessionID: "op:" + c.Jti}, c.Epoch, nil
}
