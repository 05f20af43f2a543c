package sqlite

import (
	"context"
	"errors"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// versionCacheBytes bounds the memory the current-version cache holds.
const versionCacheBytes = 64 << 20

// versionCache holds the current versions of recently read resources, as
// stored (sealed bodies: ciphertext, never plaintext), so that reading a
// resource read before takes no SQLite read. SQLite empties a read
// connection's page cache at the first read after any commit, and under
// reads every request commits its audit record, so without this cache
// every point read fetches its B-tree pages again.
//
// Coherence. Only the store's writer changes versions (writer.Put), and
// this process is the only one writing the database (the caller locks the
// directory). gen counts the writer's commits that put versions: it is
// odd while one is committing, and even again once the commit has ended
// and the versions it put are dropped from the cache. A read
// (ReadCurrent) notes gen before it starts, so before any View of it takes
// its snapshot, and uses the cache, both to read and to fill it, only
// while gen is still that even number. So a version it reads from the
// cache is the one current when it started and still current: a commit
// that could have changed it would have moved gen first. Reads go on
// while a commit runs; they read SQLite meanwhile.
type versionCache struct {
	mu  sync.Mutex
	gen uint64
	vs  bytesMap[versionKey, store.Version] // counted as entryBytes counts
}

type versionKey struct{ typ, id string }

func newVersionCache(limit int64) *versionCache {
	return &versionCache{vs: newBytesMap[versionKey](limit, entryBytes)}
}

// entryBytes is what an entry is counted as: its strings and body, and
// about what the map and the Version take beside them.
func entryBytes(v store.Version) int64 {
	return int64(len(v.Type) + len(v.ID) + len(v.Body) + 128)
}

// generation returns the generation a read starts in.
func (c *versionCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// get returns a copy of the cached current version of (typ, id) if the
// read that started in gen may use the cache.
func (c *versionCache) get(typ, id string, gen uint64) (store.Version, bool) {
	c.mu.Lock()
	v, ok := c.vs.m[versionKey{typ, id}]
	ok = ok && c.gen == gen && gen%2 == 0
	c.mu.Unlock()
	if !ok {
		return store.Version{}, false
	}
	if v.Body != nil {
		v.Body = append([]byte(nil), v.Body...) // the caller may write to it
	}
	return v, true
}

// put keeps v, which a read that started in gen read from SQLite as the
// current version, unless a commit that puts versions has started since.
// Beyond the limit it drops entries at random (Go's map order) to make
// room; a version bigger than a sixteenth of the limit is not kept.
func (c *versionCache) put(v store.Version, gen uint64) {
	n := entryBytes(v)
	if n > c.vs.limit/16 {
		return
	}
	if v.Body != nil {
		v.Body = append([]byte(nil), v.Body...)
	}
	k := versionKey{v.Type, v.ID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || gen%2 != 0 {
		return
	}
	c.vs.put(k, v, n)
}

// committing marks the start of a commit that puts versions: from now on
// no read uses the cache until ended.
func (c *versionCache) committing() {
	c.mu.Lock()
	c.gen |= 1
	c.mu.Unlock()
}

// ended marks the end of that commit, whether it committed or not: the
// versions of keys are dropped, and reads starting from now on use the
// cache again.
func (c *versionCache) ended(keys []versionKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.vs.drop(k)
	}
	c.gen = (c.gen | 1) + 1
}

var _ store.CurrentReader = (*Backend)(nil)

// ReadCurrent implements store.CurrentReader: the versions the cache holds
// need no read transaction, the others are read in one View and kept. The
// two agree on one snapshot if no commit putting versions started in
// between (the generation did not move); otherwise every version is read
// again in one View.
func (b *Backend) ReadCurrent(ctx context.Context, typ string, ids []string) ([]store.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return nil, store.ErrClosed
	}
	gen := b.cache.generation()
	hits := make([]store.Version, 0, len(ids))
	for _, id := range ids {
		v, ok := b.cache.get(typ, id, gen)
		if !ok {
			break
		}
		hits = append(hits, v)
	}
	if len(hits) == len(ids) {
		return hits, nil // all kept: no SQL, and already in order
	}
	found := make(map[string]store.Version, len(ids))
	for _, v := range hits {
		found[v.ID] = v
	}
	var missing []string
	for _, id := range ids[len(hits):] {
		if _, ok := found[id]; ok {
			continue
		}
		if v, ok := b.cache.get(typ, id, gen); ok {
			found[id] = v
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 { // kept since the first look
		return store.InOrder(ids, found), nil
	}
	vs, err := b.viewCurrent(ctx, typ, missing)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		found[v.ID] = v
		b.cache.put(v, gen)
	}
	if len(missing) < len(ids) && b.cache.generation() != gen {
		return b.viewCurrent(ctx, typ, ids)
	}
	return store.InOrder(ids, found), nil
}

// viewCurrent reads the current versions of ids in a View.
func (b *Backend) viewCurrent(ctx context.Context, typ string, ids []string) ([]store.Version, error) {
	var vs []store.Version
	err := b.View(ctx, func(r store.Reader) error {
		if len(ids) > 1 {
			var err error
			vs, err = r.CurrentMany(typ, ids)
			return err
		}
		v, err := r.Current(typ, ids[0])
		if err == nil {
			vs = []store.Version{v}
		} else if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return err
	})
	return vs, err
}
