//go:build !benchplainindex

package barrier

import "github.com/phivault/phivault/internal/store"

// Token returns the blind index token of parts: HMAC-SHA256 under the index
// key, truncated to TokenSize bytes. Each part is length-prefixed, so
// ("ab","c") and ("a","bc") differ. Without the index key no token can be
// computed, and equal inputs give equal tokens (the equality pattern is what
// an index reveals; see docs/search.md).
//
// This is every product build. The benchmark-only build tag
// benchplainindex replaces it (token_plain.go) and must never ship.
func (b *Barrier) Token(parts ...string) store.Token {
	if b.closed.Load() {
		return make(store.Token, TokenSize) // matches nothing; writes fail on Seal
	}
	return b.keyedToken(parts)
}
