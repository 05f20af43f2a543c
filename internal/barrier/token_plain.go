//go:build benchplainindex

package barrier

import (
	"encoding/binary"

	"github.com/phivault/phivault/internal/store"
)

// Token, in this BENCHMARK-ONLY build (tag benchplainindex, never shipped,
// never built by CI), returns the search index tokens in plaintext: for
// parts that start with "idx" (every token of the search index,
// internal/search), the length-prefixed parts themselves, with no keyed
// hash. It exists to measure what the keyed hash of the index costs against
// a plaintext index over the same store, bodies still encrypted (see
// docs/benchmarks.md, "Search").
//
// Every other use of Token (key names, audit query digests, alert and
// session ids, cookie keys) stays keyed as in the product build: those are
// not an index, and some of them need TokenSize random-looking bytes (an
// 8-byte prefix as an id, a 32-byte key), which plaintext would break.
func (b *Barrier) Token(parts ...string) store.Token {
	if b.closed.Load() {
		return make(store.Token, TokenSize) // matches nothing; writes fail on Seal
	}
	if len(parts) == 0 || parts[0] != plainIndexPrefix {
		return b.keyedToken(parts)
	}
	return plainToken(parts)
}

// plainIndexPrefix is the first part of every search index token.
const plainIndexPrefix = "idx"

// plainToken is the length-prefixed concatenation of parts.
func plainToken(parts []string) store.Token {
	n := 0
	for _, p := range parts {
		n += 4 + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return store.Token(out)
}
