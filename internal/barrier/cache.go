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
type cache struct {
	mu    sync.Mutex
	max   int
	items map[KeyID]*list.Element
	order *list.List // front: most recent
}

type cacheEntry struct {
	id KeyID
	k  *dataKey
}

func newCache(max int) *cache {
	if max < 16 {
		max = 16
	}
	return &cache{max: max, items: map[KeyID]*list.Element{}, order: list.New()}
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
// the cached key.
func (c *cache) put(id KeyID, k *dataKey) *dataKey {
	c.mu.Lock()
	defer c.mu.Unlock()
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

// drop removes a key (after destruction) and zeroes it.
func (c *cache) drop(id KeyID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.order.Remove(e)
		delete(c.items, id)
		clear(e.Value.(*cacheEntry).k.raw)
	}
}

// purge zeroes and forgets every key (sealing).
func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.items {
		clear(e.Value.(*cacheEntry).k.raw)
	}
	clear(c.items)
	c.order.Init()
}
