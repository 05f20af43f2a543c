package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/phivault/phivault/internal/store"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Tree storage, in the store's metadata (see docs/audit.md):
//
//	audit/tree            integrated size (8 bytes big-endian) followed by
//	                      the compact range of [0, size): the roots of its
//	                      perfect subtrees, left to right, 32 bytes each.
//	audit/tile/L/NNNNNNNNNNNN
//	                      tile N of tile level L: the hashes of the tree
//	                      nodes at level 8L with indices [256N, 256N+256),
//	                      32 bytes each; the rightmost tile of a level is
//	                      partial and grows as leaves are integrated.
//
// Every complete node of the integrated tree is either in a tile (level a
// multiple of 8) or computed from at most 128 entries of one tile, so a
// proof costs a few metadata reads and at most a few thousand hashes,
// whatever the size of the log. This is the tile layout of C2SP
// tlog-tiles, kept in metadata.
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	hashSize   = sha256.Size

	keyTree       = "audit/tree"
	prefixTile    = "audit/tile/"
	prefixCheckpt = "audit/checkpoint/"
	keyLatest     = "audit/latest-checkpoint"
)

// hasher is the RFC 9162 (RFC 6962) SHA-256 tree hasher.
var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// ErrTooLarge means a proof or root was asked for a size beyond the
// integrated tree.
var ErrTooLarge = errors.New("audit: size beyond the integrated tree")

// LeafHash returns the RFC 9162 hash of a leaf: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte { return hasher.HashLeaf(leaf) }

func tileKey(level, index uint64) string {
	return fmt.Sprintf("%s%d/%012d", prefixTile, level, index)
}

func checkpointKey(size uint64) string {
	return fmt.Sprintf("%s%020d", prefixCheckpt, size)
}

// treeState is the integrated tree: its size and compact range.
type treeState struct {
	size   uint64
	hashes [][]byte
}

func (s treeState) encode() []byte {
	b := make([]byte, 8, 8+len(s.hashes)*hashSize)
	binary.BigEndian.PutUint64(b, s.size)
	for _, h := range s.hashes {
		b = append(b, h...)
	}
	return b
}

func decodeTreeState(b []byte) (treeState, error) {
	if len(b) < 8 || (len(b)-8)%hashSize != 0 {
		return treeState{}, fmt.Errorf("audit: corrupt tree state (%d bytes)", len(b))
	}
	s := treeState{size: binary.BigEndian.Uint64(b)}
	for p := 8; p < len(b); p += hashSize {
		s.hashes = append(s.hashes, b[p:p+hashSize:p+hashSize])
	}
	if len(s.hashes) != bits.OnesCount64(s.size) {
		return treeState{}, fmt.Errorf("audit: corrupt tree state: %d hashes for size %d", len(s.hashes), s.size)
	}
	return s, nil
}

// readTreeState returns the integrated state, the zero state if none.
func readTreeState(r store.Reader) (treeState, []byte, error) {
	b, err := r.Meta(keyTree)
	if errors.Is(err, store.ErrNotFound) {
		return treeState{}, nil, nil
	}
	if err != nil {
		return treeState{}, nil, fmt.Errorf("audit: read tree state: %w", err)
	}
	s, err := decodeTreeState(b)
	return s, b, err
}

// root returns the root hash of the compact range [0, size).
func (s treeState) root() []byte {
	if s.size == 0 {
		return hasher.EmptyRoot()
	}
	r, err := rangeFactory.NewRange(0, s.size, s.hashes)
	if err != nil {
		panic(err) // decodeTreeState checked the count
	}
	h, _ := r.GetRootHash(nil)
	return h
}

// tileCache keeps full tiles, which never change once written. Partial
// tiles are always read from the store.
type tileCache struct {
	mu    sync.Mutex
	tiles map[[2]uint64][]byte
}

const maxCachedTiles = 4096 // 32 MiB

func (c *tileCache) get(level, index uint64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tiles[[2]uint64{level, index}]
}

func (c *tileCache) put(level, index uint64, t []byte) {
	if len(t) != tileWidth*hashSize {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tiles == nil || len(c.tiles) >= maxCachedTiles {
		c.tiles = map[[2]uint64][]byte{}
	}
	c.tiles[[2]uint64{level, index}] = t
}

// nodeReader reads complete node hashes of the integrated tree from tiles.
type nodeReader struct {
	r     store.Reader
	cache *tileCache // may be nil
}

func (nr nodeReader) tile(level, index uint64) ([]byte, error) {
	if nr.cache != nil {
		if t := nr.cache.get(level, index); t != nil {
			return t, nil
		}
	}
	t, err := nr.r.Meta(tileKey(level, index))
	if err != nil {
		return nil, fmt.Errorf("audit: tile %d/%d: %w", level, index, err)
	}
	if len(t)%hashSize != 0 || len(t) > tileWidth*hashSize {
		return nil, fmt.Errorf("audit: tile %d/%d: corrupt (%d bytes)", level, index, len(t))
	}
	if nr.cache != nil {
		nr.cache.put(level, index, t)
	}
	return t, nil
}

// node returns the hash of the complete node id. The caller ensures the
// node is complete within the integrated tree.
func (nr nodeReader) node(id compact.NodeID) ([]byte, error) {
	tl, k := uint64(id.Level/tileHeight), id.Level%tileHeight
	first := id.Index << k
	t, err := nr.tile(tl, first/tileWidth)
	if err != nil {
		return nil, err
	}
	off, n := first%tileWidth, uint64(1)<<k
	if uint64(len(t)/hashSize) < off+n {
		return nil, fmt.Errorf("audit: tile %d/%d: too short for node %d/%d", tl, first/tileWidth, id.Level, id.Index)
	}
	hs := make([][]byte, n)
	for i := range hs {
		p := (off + uint64(i)) * hashSize
		hs[i] = t[p : p+hashSize]
	}
	for len(hs) > 1 {
		for i := 0; i < len(hs)/2; i++ {
			hs[i] = hasher.HashChildren(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0], nil
}

// nodes returns the hashes of ids.
func (nr nodeReader) nodes(ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := nr.node(id)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// rootAt returns the root hash of the tree of the given size from tiles.
func (nr nodeReader) rootAt(size uint64) ([]byte, error) {
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	hs, err := nr.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return treeState{size: size, hashes: hs}.root(), nil
}
