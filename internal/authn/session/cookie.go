package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"

	"github.com/phivault/phivault/internal/b64url"
)

// sync refreshes the browser's record from the Keeper, if there is one.
func (m *Manager) sync(r *http.Request) {
	if m.o.Keep == nil {
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		if k, ok := parseCookie(c.Value); ok {
			m.refresh(r.Context(), k)
		}
	}
}

// lookup finds the browser's record; m.mu must be held.
func (m *Manager) lookup(r *http.Request) ([32]byte, *record) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return [32]byte{}, nil
	}
	k, ok := parseCookie(c.Value)
	if !ok {
		return [32]byte{}, nil
	}
	return k, m.recs[k]
}

// parseCookie returns the table key of a cookie value: the SHA-256 of its
// 32 random bytes. Anything else is not a session cookie.
func parseCookie(v string) ([32]byte, bool) {
	if len(v) != 43 {
		return [32]byte{}, false
	}
	raw, err := b64url.Decode(v)
	if err != nil || len(raw) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256(raw), true
}

func randText() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sourceOf(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
