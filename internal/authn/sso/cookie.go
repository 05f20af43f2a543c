package sso

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/b64url"
)

// cookieName uses the __Host- prefix: the browser keeps it only if it is
// Secure, has Path=/ and no Domain, so a sibling subdomain cannot plant it.
const cookieName = "__Host-phivault-sso"

// maxCookie bounds what parseLogin reads (a real one is about 300 bytes).
const maxCookie = 2048

// loginState is what /sso/login remembers for the callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE code verifier
	Expires  int64  `json:"e"` // unix seconds
	Next     string `json:"r"` // local path to land on
}

var errBadCookie = errors.New("sso: login cookie missing, altered or expired")

// cookieSigner signs and checks login cookies with HMAC-SHA256 under a key
// derived from the configured cookie key (so the raw key is used for
// nothing else).
type cookieSigner struct{ key []byte }

func newCookieSigner(secret []byte) cookieSigner {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("phivault sso login cookie v1"))
	return cookieSigner{key: m.Sum(nil)}
}

func (s cookieSigner) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// seal returns the cookie value for st: base64url(JSON) "." base64url(MAC).
func (s cookieSigner) seal(st loginState) string {
	b, _ := json.Marshal(st) // plain strings and an integer: cannot fail
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// parse checks v's signature and expiry at now and returns its state. Any
// malformed, unsigned, altered or expired value gives errBadCookie.
func (s cookieSigner) parse(v string, now time.Time) (loginState, error) {
	if len(v) > maxCookie {
		return loginState{}, errBadCookie
	}
	payload, sig, ok := strings.Cut(v, ".")
	if !ok {
		return loginState{}, errBadCookie
	}
	// Canonical: a lax decoder skips line breaks and the last character's
	// padding bits, so several spellings of one signature would pass.
	got, err := b64url.Decode(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return loginState{}, errBadCookie
	}
	b, err := b64url.Decode(payload)
	if err != nil {
		return loginState{}, errBadCookie
	}
	var st loginState
	if err := json.Unmarshal(b, &st); err != nil || st.State == "" || st.Nonce == "" || st.Verifier == "" || !localPath(st.Next) {
		return loginState{}, errBadCookie
	}
	if !now.Before(time.Unix(st.Expires, 0)) {
		return loginState{}, errBadCookie
	}
	return st, nil
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

// usedStates remembers the states already presented to the callback until
// their cookies expire, so a captured callback URL and cookie cannot be
// replayed on this node. Safe for concurrent use.
type usedStates struct {
	mu   sync.Mutex
	seen map[string]time.Time // state -> expiry
	max  int
}

var errTooManyLogins = errors.New("sso: too many logins in progress")

// use marks state as used until expires. It reports false if the state
// was used before; errTooManyLogins if the table is full of live states.
func (u *usedStates) use(state string, expires, now time.Time) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = make(map[string]time.Time)
	}
	if _, dup := u.seen[state]; dup {
		return false, nil
	}
	if len(u.seen) >= u.max {
		for k, exp := range u.seen {
			if !now.Before(exp) {
				delete(u.seen, k)
			}
		}
		if len(u.seen) >= u.max {
			return false, errTooManyLogins
		}
	}
	u.seen[state] = expires
	return true, nil
}
