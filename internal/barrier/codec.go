package barrier

import (
	_ "embed"
	"errors"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// maxPlain bounds a decompressed body, so a forged length cannot make us
// allocate without limit (bodies are authenticated before this, but a
// defence in depth costs nothing).
const maxPlain = 256 << 20

// Bodies are compressed before sealing, when that makes them smaller, as
// an S2 block encoded against a fixed dictionary of typical stored
// resources (bodydict.json: one resource of each type the demo generator
// makes, as the store writes them). Against zstd at its fastest level,
// which bodies sealed before it used (flagZstd, still opened), it is 3-7
// times cheaper to encode and to decode and, for typical resources of 1-2
// KB, 1.3-2 times smaller; only large narrative-heavy resources come out
// about 15% bigger (BenchmarkCodec, docs/ciphertext.md).
//
// The dictionary is part of the sealed format and never changes
// (TestBodyDictFixed). A better one would get another flag value, and
// Open would keep this one.

//go:embed bodydict.json
var bodyDictData []byte

// bodyDict is built on first use; its tables are then read-only, so it is
// safe for concurrent use.
var bodyDict = sync.OnceValue(func() *s2.Dict {
	return s2.MakeDict(bodyDictData, []byte(`{"`))
})

// zstdDecoder opens bodies sealed with flagZstd.
var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxPlain))
	if err != nil {
		panic(err) // only for invalid options
	}
	return dec
})

// compress returns the body to seal and its flags: the S2 block when it is
// smaller than p (flagS2), else p itself (no flag). Compression reveals the
// compressed length, which can leak a little about content;
// docs/ciphertext.md says so.
func compress(p []byte) ([]byte, byte) {
	if len(p) == 0 || len(p) > maxPlain {
		return p, 0
	}
	z := bodyDict().Encode(make([]byte, s2.MaxEncodedLen(len(p))), p)
	if len(z) >= len(p) {
		return p, 0
	}
	return z, flagS2
}

// decompress returns the plaintext of an authenticated body sealed with
// flags (one of flagZstd and flagS2).
func decompress(flags byte, z []byte) ([]byte, error) {
	if flags == flagZstd {
		p, err := zstdDecoder().DecodeAll(z, nil)
		if err != nil {
			return nil, errors.Join(ErrMalformed, err)
		}
		return p, nil
	}
	if n, err := s2.DecodedLen(z); err != nil || n > maxPlain {
		return nil, errors.Join(ErrMalformed, errors.New("barrier: bad S2 block length"))
	}
	p, err := bodyDict().Decode(nil, z)
	if err != nil {
		return nil, errors.Join(ErrMalformed, err)
	}
	return p, nil
}
