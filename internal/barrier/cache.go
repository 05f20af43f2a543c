package barrier

import (
	"container/list"
	"crypto/cipher"
	"sync"
)

// dataKey is an unwrapped data key ready for use.
type dataKey struct {
	raw  []byte
	aead cipher.AEAD
}

// cache holds unwrapped data keys, bounded, least recently used out. An
// evicted key's bytes are zeroed. (The AES key schedule inside crypto/aes
// cannot be wiped from Go; it becomes garbage with the evicted entry.)
//
// It also remembers the ids of destroyed keys (forget), under the same
// lock as put: once forget returns, no goroutine can cache that key again,
// even one that unwrapped it from a record read before the destruction.
type cache struct {
	mu    sync.Mutex
	max   int
	items map[KeyID]*list.Element
	order *list.List         // front: most recent
	gone  map[KeyID]struct{} // destroyed: never cached again
}

type cacheEntry struct {
	id KeyID
	k  *dataKey
}

func newCache(max int) *cache {
	if max < 16 {
		max = 16
	}
	return &cache{max: max, items: map[KeyID]*list.Element{}, order: list.New(), gone: map[KeyID]struct{}{}}
}

func (c *cache) get(id KeyID) *dataKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*cacheEntry).k
	}
	return nil
}

// put adds k unless another goroutine added the same key first, and returns
// the cached key; or, if id was destroyed (forget), zeroes k and returns
// nil.
func (c *cache) put(id KeyID, k *dataKey) *dataKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, destroyed := c.gone[id]; destroyed {
		clear(k.raw)
		return nil
	}
	if e, ok := c.items[id]; ok {
		clear(k.raw)
		c.order.MoveToFront(e)
		return e.Value.(*cacheEntry).k
	}
	c.items[id] = c.order.PushFront(&cacheEntry{id: id, k: k})
	for c.order.Len() > c.max {
		e := c.order.Back()
		c.order.Remove(e)
		ce := e.Value.(*cacheEntry)
		delete(c.items, ce.id)
		clear(ce.k.raw)
	}
	return k
}

// forget records id as destroyed and drops its cached key, zeroed. It
// reports whether id was not known destroyed before.
func (c *cache) forget(id KeyID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, known := c.gone[id]; known {
		return false
	}
	c.gone[id] = struct{}{}
	if e, ok := c.items[id]; ok {
		c.order.Remove(e)
		delete(c.items, id)
		clear(e.Value.(*cacheEntry).k.raw)
	}
	return true
}

// purge zeroes and forgets every cached key (sealing); destroyed ids stay
// known.
func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.items {
		clear(e.Value.(*cacheEntry).k.raw)
	}
	clear(c.items)
	c.order.Init()
}
