package store

import (
	"bytes"
	_ "embed"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Audit leaves are stored compressed: a leaf is a JSON AuditEvent of
// 1.5-5 KB whose structure repeats from one event to the next, so a zstd
// frame primed with a dictionary of typical leaves is 10-15 times smaller.
// Smaller rows mean less to write to the log and the WAL per request, and a
// smaller database and backups.
//
// The stored form is defined here, once, for every backend, so that rows
// copied between stores (backup dump and load, migration) need no
// conversion: a row is either a zstd frame (it starts with the zstd magic
// number) naming dictionary leafDictID, or the leaf itself. A leaf that
// itself starts with the magic number is always stored as a frame, so the
// two never collide; rows written before compression (plain JSON) read
// back unchanged.
//
// The dictionary is part of the storage format: stored frames name it by
// ID, so it never changes. A better one would get a new ID, and the
// decoder would keep both.

//go:embed leafdict.json
var leafDict []byte

const leafDictID = 1

// maxLeaf bounds what one stored row may expand to, so that a forged row
// cannot make a reader allocate without limit. It is the most either
// database stores in one value (1 GB), so no real leaf reaches it.
const maxLeaf = 1 << 30

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

var leafCodec = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderDictRaw(leafDictID, leafDict))
	if err != nil {
		panic("store: leaf encoder: " + err.Error()) // fixed options: cannot fail
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderDictRaw(leafDictID, leafDict), zstd.WithDecoderMaxMemory(maxLeaf), zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic("store: leaf decoder: " + err.Error())
	}
	return enc, dec
})

// PackLeaf returns the stored form of an audit leaf: compressed when that
// is smaller (or when the leaf starts with the zstd magic number), else
// the leaf itself. UnpackLeaf(PackLeaf(l)) equals l for every l.
func PackLeaf(leaf []byte) []byte {
	enc, _ := leafCodec()
	z := enc.EncodeAll(leaf, make([]byte, 0, len(leaf)/4+64))
	if len(z) < len(leaf) || bytes.HasPrefix(leaf, zstdMagic) {
		return z
	}
	return leaf
}

// UnpackLeaf returns the leaf a stored row holds. A row that starts with
// the zstd magic number but does not decode (altered in the database) is
// returned as stored: it then fails the audit log's hash check at its own
// index, like any other altered leaf, instead of making the whole range
// unreadable.
func UnpackLeaf(row []byte) []byte {
	if !bytes.HasPrefix(row, zstdMagic) {
		return row
	}
	_, dec := leafCodec()
	leaf, err := dec.DecodeAll(row, nil)
	if err != nil {
		return row
	}
	if leaf == nil {
		leaf = []byte{}
	}
	return leaf
}
