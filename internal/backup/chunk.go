package backup

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

// Chunking parameters (content-defined, restic's Rabin fingerprints with
// the repository's random polynomial). Smaller than restic's defaults
// (512 KiB to 8 MiB): a database changed in scattered pages dedups better
// with 64 KiB chunks, at the cost of more files.
const (
	chunkMin     = 16 << 10
	chunkMax     = 1 << 20
	chunkAvgBits = 16 // 64 KiB on average
)

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(2*chunkMax), zstd.WithDecoderConcurrency(1))
)

// newChunker returns a chunker over f with the repository's parameters.
func newChunker(f io.Reader, pol chunker.Pol) *chunker.Chunker {
	c := chunker.NewWithBoundaries(f, pol, chunkMin, chunkMax)
	c.SetAverageBits(chunkAvgBits)
	return c
}

// chunkID is the keyed id of a plaintext chunk: HMAC-SHA256(id key,
// "chunk" || plaintext). A plain hash would let anyone holding the
// repository test whether it holds a chunk they can guess.
func chunkID(idKey, plain []byte) string {
	m := hmac.New(sha256.New, idKey)
	m.Write([]byte("chunk\x00"))
	m.Write(plain)
	return hex.EncodeToString(m.Sum(nil))
}

// chunkPath is where a chunk lives, relative to the repository.
func chunkPath(id string) string { return path.Join("data", id[:2], id) }

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// sealChunk compresses then encrypts plain to the backup recipients only
// (never to the server key, which is last in r.recips).
func (r *Repo) sealChunk(plain []byte) ([]byte, error) {
	comp := zenc.EncodeAll(plain, nil)
	return r.seal(comp, r.recips[:len(r.recips)-1]...)
}

// putChunk stores plain unless a chunk with its id exists. It returns the
// id, whether it was new, and the stored size.
func (r *Repo) putChunk(plain []byte) (id string, added bool, stored int64, err error) {
	id = chunkID(r.key.IDKey, plain)
	ctx := context.Background()
	if size, err := r.st.Size(ctx, chunkPath(id)); err == nil {
		return id, false, size, nil
	}
	sealed, err := r.sealChunk(plain)
	if err != nil {
		return "", false, 0, err
	}
	if err := r.writeOnce(chunkPath(id), sealed); err != nil {
		if errors.Is(err, ErrExists) {
			size, serr := r.st.Size(ctx, chunkPath(id))
			if serr != nil {
				return "", false, 0, serr
			}
			return id, false, size, nil
		}
		return "", false, 0, err
	}
	return id, true, int64(len(sealed)), nil
}

// readChunk reads, decrypts and checks one chunk against c: stored size,
// plaintext size, SHA-256 and (when idKey is known) keyed id.
func readChunk(ctx context.Context, st Storage, ids []age.Identity, idKey []byte, c Chunk) ([]byte, error) {
	if !validID(c.ID) {
		return nil, fmt.Errorf("%w: malformed chunk id", ErrDamaged)
	}
	sealed, err := st.Get(ctx, chunkPath(c.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: chunk missing", ErrDamaged)
	} else if err != nil {
		return nil, err
	}
	if int64(len(sealed)) != c.Stored {
		return nil, fmt.Errorf("%w: chunk is %d bytes, the manifest says %d", ErrDamaged, len(sealed), c.Stored)
	}
	comp, err := open(sealed, ids)
	if err != nil {
		return nil, err
	}
	plain, err := zdec.DecodeAll(comp, make([]byte, 0, c.Size))
	if err != nil {
		return nil, fmt.Errorf("%w: chunk does not decompress: %v", ErrDamaged, err)
	}
	sum := sha256.Sum256(plain)
	switch {
	case len(plain) != int(c.Size):
		return nil, fmt.Errorf("%w: chunk holds %d bytes, the manifest says %d", ErrDamaged, len(plain), c.Size)
	case !hmac.Equal(sum[:], c.SHA256):
		return nil, fmt.Errorf("%w: chunk content does not match its hash", ErrDamaged)
	case idKey != nil && chunkID(idKey, plain) != c.ID:
		return nil, fmt.Errorf("%w: chunk content does not match its id", ErrDamaged)
	}
	return plain, nil
}
