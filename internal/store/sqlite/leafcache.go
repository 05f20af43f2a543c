package sqlite

import (
	"bytes"
	"sync"
)

// leafCacheBytes bounds the audit leaves kept in memory.
const leafCacheBytes = 16 << 20

// leafCache holds the audit leaves most recently committed, in index order,
// so that the log's readers that follow its end (the integrator hashing new
// leaves into the tree, the live detector) get them without reading back
// what the writer has just written. A leaf never changes once committed,
// and only committed leaves enter the cache (commit adds a group's leaves
// after its COMMIT returned); a reader still bounds every range by its own
// snapshot's size, so it sees exactly what the database would give it.
type leafCache struct {
	mu     sync.RWMutex
	base   int64    // index of leaves[0]
	leaves [][]byte // consecutive indexes from base
	bytes  int      // total length of leaves
}

// stagedLeaf is a leaf appended by the open write transaction.
type stagedLeaf struct {
	idx  int64
	leaf []byte
}

// add records committed leaves, which follow one another. Leaves that do
// not continue the cached run start a new one; the oldest go when the
// cache is over its size.
func (c *leafCache) add(ls []stagedLeaf) {
	if len(ls) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range ls {
		if l.idx != c.base+int64(len(c.leaves)) {
			clear(c.leaves)
			c.base, c.leaves, c.bytes = l.idx, c.leaves[:0], 0
		}
		c.leaves = append(c.leaves, l.leaf)
		c.bytes += len(l.leaf)
	}
	drop := 0
	for c.bytes > leafCacheBytes && drop < len(c.leaves) {
		c.bytes -= len(c.leaves[drop])
		drop++
	}
	if drop > 0 {
		n := copy(c.leaves, c.leaves[drop:])
		clear(c.leaves[n:])
		c.leaves = c.leaves[:n]
		c.base += int64(drop)
	}
}

// get returns copies of the leaves [from, to) if the cache holds all of
// them.
func (c *leafCache) get(from, to int64) ([][]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if from < c.base || to > c.base+int64(len(c.leaves)) {
		return nil, false
	}
	out := make([][]byte, 0, to-from)
	for _, l := range c.leaves[from-c.base : to-c.base] {
		out = append(out, bytes.Clone(l))
	}
	return out, true
}
