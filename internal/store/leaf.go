package store

import (
	_ "embed"
	"sync"

	"github.com/klauspost/compress/s2"
)

// Audit leaves are stored compressed: a leaf is a JSON AuditEvent of
// 1.5-5 KB whose structure repeats from one event to the next, so an S2
// block encoded against a dictionary of typical leaves is about 13 times
// smaller. Smaller rows mean less to write to the log and the WAL per
// request, and a smaller database and backups. S2 rather than zstd: zstd
// with the same dictionary is 10% smaller but 4 times slower to encode
// and decode (BenchmarkPackLeaf), and the writer encodes every leaf.
//
// The stored form is defined here, once, for every backend, so that rows
// copied between stores (backup dump and load, migration) need no
// conversion. A row is either the leaf itself, or leafTag followed by the
// S2 block of the leaf against dictionary 1 (leafdict.json). A leaf that
// starts with leafTag[0] is always stored encoded, so the two never
// collide; a JSON leaf never starts with it (0xff is not UTF-8), and rows
// written before compression read back unchanged.
//
// The dictionary is part of the storage format and never changes. A better
// one would get a new tag byte, and UnpackLeaf would keep both.

//go:embed leafdict.json
var leafDictData []byte

// leafTag starts an encoded row: 0xff, then the dictionary's number.
var leafTag = [2]byte{0xff, 1}

// maxLeaf bounds what one stored row may expand to, so that a forged row
// cannot make a reader allocate without limit. It is the most either
// database stores in one value (1 GB), so no real leaf reaches it.
const maxLeaf = 1 << 30

// leafDict is built on first use; its encoding tables are then read-only,
// so it is safe for concurrent use.
var leafDict = sync.OnceValue(func() *s2.Dict {
	return s2.MakeDict(leafDictData, []byte(`{"action":"`))
})

// PackLeaf returns the stored form of an audit leaf: encoded when that is
// smaller (or when the leaf starts with leafTag[0]), else the leaf itself.
// UnpackLeaf(PackLeaf(l)) equals l for every l.
func PackLeaf(leaf []byte) []byte {
	if len(leaf) == 0 || len(leaf) > maxLeaf {
		return leaf // nothing to gain; too large to bound on read
	}
	dst := make([]byte, len(leafTag)+s2.MaxEncodedLen(len(leaf)))
	copy(dst, leafTag[:])
	n := len(leafTag) + len(leafDict().Encode(dst[len(leafTag):], leaf)) // encoded in place
	if n < len(leaf) || leaf[0] == leafTag[0] {
		return dst[:n:n]
	}
	return leaf
}

// UnpackLeaf returns the leaf a stored row holds. A row that starts with
// leafTag[0] but does not decode (altered in the database) is returned as
// stored: it then fails the audit log's hash check at its own index, like
// any other altered leaf, instead of making the whole range unreadable.
func UnpackLeaf(row []byte) []byte {
	if len(row) == 0 || row[0] != leafTag[0] {
		return row
	}
	if len(row) < len(leafTag) || row[1] != leafTag[1] {
		return row
	}
	block := row[len(leafTag):]
	if n, err := s2.DecodedLen(block); err != nil || n > maxLeaf {
		return row
	}
	leaf, err := leafDict().Decode(nil, block)
	if err != nil {
		return row
	}
	if leaf == nil {
		leaf = []byte{}
	}
	return leaf
}
