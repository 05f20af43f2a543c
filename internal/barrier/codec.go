package barrier

import (
	"errors"

	"github.com/klauspost/compress/zstd"
)

// maxPlain bounds a decompressed body, so a forged length cannot make us
// allocate without limit (bodies are authenticated before this, but a
// defence in depth costs nothing).
const maxPlain = 256 << 20

// codec compresses before sealing. Compression reveals the compressed
// length, which can leak a little about content; docs/ciphertext.md says so.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newCodec() *codec {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // only for invalid options
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxPlain))
	if err != nil {
		panic(err)
	}
	return &codec{enc: enc, dec: dec}
}

// compress returns the body to seal and its flags; small or incompressible
// bodies are sealed as they are.
func (c *codec) compress(p []byte) ([]byte, byte) {
	if len(p) < 128 {
		return p, 0
	}
	z := c.enc.EncodeAll(p, make([]byte, 0, len(p)/2))
	if len(z) >= len(p) {
		return p, 0
	}
	return z, flagZstd
}

func (c *codec) decompress(z []byte) ([]byte, error) {
	p, err := c.dec.DecodeAll(z, nil)
	if err != nil {
		return nil, errors.Join(ErrMalformed, err)
	}
	return p, nil
}
