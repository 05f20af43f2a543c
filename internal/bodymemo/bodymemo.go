// Package bodymemo remembers values computed from resource bodies: the
// labels a read decision needs, the date values a sorted search orders
// by. Computing them scans the body; a search decides and orders every
// candidate it reads, and the same versions are read again by the next
// page, the next look at the chart, the next poll of an app.
//
// A value is keyed by the version (type, id, version id), a hash of the
// body under a seed of this process, and a scope the caller names (what
// else the value depends on), so a body that differs in any way - a
// version shaped by _elements, a write's body not yet stored - is
// computed anew, never answered with another body's value. A memo holds
// at most its bound of values and starts over when full.
package bodymemo

import (
	"hash/maphash"
	"sync"
)

// Memo is a memo of values of type V. The zero Memo is ready to use and
// holds at most DefaultMax values; it is safe for concurrent use. Values
// are shared between callers, which must not change them.
type Memo[V any] struct {
	Max int // the most values held; 0: DefaultMax

	once sync.Once
	seed maphash.Seed
	mu   sync.Mutex
	m    map[key]V
}

// DefaultMax is the bound of a Memo whose Max is 0.
const DefaultMax = 1 << 16

type key struct {
	typ, id string
	vid     int64
	body    uint64
	scope   any
}

// Get returns the value of the version (typ, id, vid) with body in scope
// (a comparable value; nil for none), calling compute when it is not
// remembered. An error is returned and not remembered.
func (m *Memo[V]) Get(typ, id string, vid int64, body []byte, scope any, compute func() (V, error)) (V, error) {
	m.once.Do(func() { m.seed = maphash.MakeSeed() })
	k := key{typ, id, vid, maphash.Bytes(m.seed, body), scope}
	m.mu.Lock()
	v, ok := m.m[k]
	m.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := compute()
	if err != nil {
		return v, err
	}
	max := m.Max
	if max <= 0 {
		max = DefaultMax
	}
	m.mu.Lock()
	if m.m == nil || len(m.m) >= max {
		m.m = make(map[key]V)
	}
	m.m[k] = v
	m.mu.Unlock()
	return v, nil
}

// Len returns how many values the memo holds.
func (m *Memo[V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
