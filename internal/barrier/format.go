package barrier

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Sealed format, version 1 (docs/ciphertext.md):
//
//	offset size field
//	0      1    format version (1)
//	1      1    flags: 0 (body as is), 1 (compressed with zstd; no longer
//	            written) or 2 (an S2 block against the body dictionary)
//	2      16   data-key id
//	18     12   AES-GCM nonce (random)
//	30     n+16 AES-256-GCM ciphertext and tag
//
// The associated data is the 30-byte header followed by the caller's
// context (tenant, resource type, id, version), so a ciphertext moved to
// another row, version or tenant, or with an edited header, fails to open.
const (
	formatV1   = 1
	flagZstd   = 1
	flagS2     = 2
	headerSize = 2 + KeyIDSize + nonceSize
	nonceSize  = 12
	// KeyIDSize is the length of a data-key id.
	KeyIDSize = 16
)

// KeyID names one data-encryption key. It is random and says nothing about
// what the key protects.
type KeyID [KeyIDSize]byte

func (id KeyID) String() string { return fmt.Sprintf("%x", id[:]) }

// Errors returned by Open. A ciphertext that does not authenticate never
// yields plaintext.
var (
	ErrMalformed      = errors.New("barrier: malformed ciphertext")
	ErrAuthentication = errors.New("barrier: ciphertext does not authenticate (wrong place, tampered or wrong key)")
)

// header parses the fixed header of a sealed value.
func header(sealed []byte) (flags byte, id KeyID, err error) {
	if len(sealed) < headerSize+16 || sealed[0] != formatV1 || sealed[1] > flagS2 {
		return 0, id, ErrMalformed
	}
	copy(id[:], sealed[2:2+KeyIDSize])
	return sealed[1], id, nil
}

// KeyIDOf returns the id of the data key that sealed a value.
func KeyIDOf(sealed []byte) (KeyID, error) {
	_, id, err := header(sealed)
	return id, err
}

func seal(aead cipher.AEAD, id KeyID, flags byte, context, plaintext []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plaintext)+aead.Overhead())
	out[0] = formatV1
	out[1] = flags
	copy(out[2:], id[:])
	if _, err := rand.Read(out[2+KeyIDSize : headerSize]); err != nil {
		panic("barrier: no randomness: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	ad := associated(nil, out[:headerSize], context)
	return aead.Seal(out, out[2+KeyIDSize:headerSize], plaintext, ad)
}

// open appends the plaintext of sealed to dst, which it also uses for the
// associated data: the plaintext starts after it, at the returned offset.
func open(aead cipher.AEAD, dst, sealed, context []byte) ([]byte, int, error) {
	ad := associated(dst, sealed[:headerSize], context)
	out, err := aead.Open(ad, sealed[2+KeyIDSize:headerSize], sealed[headerSize:], ad)
	if err != nil {
		return nil, 0, ErrAuthentication
	}
	return out, len(ad), nil
}

// associated appends the associated data of a value with header hdr and
// context to dst.
func associated(dst, hdr, context []byte) []byte {
	ad := slices.Grow(dst, len(hdr)+4+len(context))
	ad = append(ad, hdr...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(context)))
	return append(ad, context...)
}

// Context builds the associated-data context from its parts; each part is
// length-prefixed so that no two different part lists give the same bytes.
func Context(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// NewKeyID returns a random key id.
func NewKeyID() (KeyID, error) {
	var id KeyID
	_, err := rand.Read(id[:])
	return id, err
}
