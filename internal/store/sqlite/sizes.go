package sqlite

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// sizes remembers for a moment how many postings the token groups of
// recent queries had, so that choosing the driving group of a query that
// repeats a group (every patient-scoped search names the same category)
// counts nothing again. Only the choice of driver reads it: a stale size
// can make a query slower, never change its answer.
//
// What it holds is no more than SQLite's own page cache does: a group
// recently asked for answers faster.
type sizes struct {
	mu      sync.Mutex
	m       map[string]groupSize
	now     func() time.Time
	counted atomic.Int64 // groups counted in the index (cache misses)
}

// groupSize is a group's postings counted up to limit: n < limit is the
// exact count, n == limit says "at least limit".
type groupSize struct {
	n, limit int64
	at       time.Time
}

const (
	sizesTTL    = time.Second // how long a count is trusted
	sizesMax    = 4096        // entries; the map starts over when full
	sizesMaxKey = 1024        // bytes; larger groups (date ranges, which vary) are not kept
)

func newSizes() *sizes { return &sizes{m: map[string]groupSize{}, now: time.Now} }

// sizeKey names group g of type typ.
func sizeKey(typ string, g []store.Token) string {
	b := binary.AppendUvarint(nil, uint64(len(typ)))
	b = append(b, typ...)
	for _, t := range g {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return string(b)
}

// get returns the group's postings counted up to limit, if a count that
// answers it is fresh.
func (s *sizes) get(key string, limit int64) (int64, bool) {
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if !ok || s.now().Sub(e.at) > sizesTTL {
		return 0, false
	}
	switch {
	case e.n < e.limit: // exact
		return min(e.n, limit), true
	case e.n >= limit: // at least e.n, and limit asks no more
		return limit, true
	}
	return 0, false
}

// put records a count made up to limit.
func (s *sizes) put(key string, n, limit int64) {
	s.counted.Add(1)
	if len(key) > sizesMaxKey {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= sizesMax {
		clear(s.m)
	}
	s.m[key] = groupSize{n: n, limit: limit, at: s.now()}
}
