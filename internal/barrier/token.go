package barrier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// TokenSize is the length of a blind token: 128 bits of HMAC-SHA256.
const TokenSize = 16

// hmacPool returns a pool of HMAC-SHA256 states keyed by key (which must
// not change afterwards).
func hmacPool(key []byte) *sync.Pool {
	return &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
}

// keyedToken is the blind token of parts: HMAC-SHA256 under the index key
// over the length-prefixed parts, truncated to TokenSize bytes.
func (b *Barrier) keyedToken(parts []string) store.Token {
	pool := b.hmacs.Load()
	h := pool.Get().(hash.Hash)
	h.Reset()
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	pool.Put(h)
	return store.Token(out[:TokenSize:TokenSize])
}
