// Package memstore is a tiny in-memory store.Backend for the audit tests:
// metadata and audit leaves only (resource operations report
// ErrUnsupported). Update transactions are serialised and read their own
// writes; a failed Update keeps nothing. It is "durable" only in that a nil
// Update means the writes are visible to every later View.
//
// Tamper gives tests raw access to the stored leaves, the way an attacker
// with access to the database file would have.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// ErrUnsupported is returned by the resource operations, which the audit
// package does not use.
var ErrUnsupported = errors.New("memstore: resource operations not supported")

// Store is an in-memory backend. The zero value is not usable; call New.
type Store struct {
	mu     sync.RWMutex
	meta   map[string][]byte
	leaves [][]byte
	closed bool
	// FailUpdates, when set, makes every Update fail with this error (fault
	// injection).
	FailUpdates error
}

var _ store.Backend = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{meta: map[string][]byte{}} }

// Clone returns an independent copy of s. Leaves and values are shared
// but never modified in place by the store, so Tamper on the copy must
// replace, not mutate, any leaf it changes.
func (s *Store) Clone() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := New()
	for k, v := range s.meta {
		c.meta[k] = v
	}
	c.leaves = append([][]byte(nil), s.leaves...)
	return c
}

// Tamper lets fn rewrite the raw leaves and metadata, bypassing every
// check. fn must not keep the slices.
func (s *Store) Tamper(fn func(leaves [][]byte, meta map[string][]byte) [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaves = fn(s.leaves, s.meta)
}

// View runs fn against the current state, holding writers off meanwhile.
func (s *Store) View(ctx context.Context, fn func(store.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn(&tx{s: s})
}

// Update runs fn in a serialised transaction.
func (s *Store) Update(ctx context.Context, fn func(store.Writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if s.FailUpdates != nil {
		return s.FailUpdates
	}
	t := &tx{s: s, writes: map[string][]byte{}}
	if err := fn(t); err != nil {
		return err
	}
	for k, v := range t.writes {
		if v == nil {
			delete(s.meta, k)
		} else {
			s.meta[k] = v
		}
	}
	s.leaves = append(s.leaves, t.appended...)
	return nil
}

// Close marks the store closed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// tx is a Reader (writes == nil) or a Writer over s; the caller holds s.mu.
type tx struct {
	s        *Store
	writes   map[string][]byte // nil value: deleted
	appended [][]byte
}

func (t *tx) Current(string, string) (store.Version, error) { return store.Version{}, ErrUnsupported }
func (t *tx) CurrentMany(string, []string) ([]store.Version, error) {
	return nil, ErrUnsupported
}
func (t *tx) Get(string, string, int64) (store.Version, error) {
	return store.Version{}, ErrUnsupported
}
func (t *tx) History(store.HistoryQuery) ([]store.Version, error) { return nil, ErrUnsupported }
func (t *tx) Match(store.MatchQuery) ([]string, error)            { return nil, ErrUnsupported }
func (t *tx) Count(store.MatchQuery) (int, error)                 { return 0, ErrUnsupported }
func (t *tx) Carried(string, []string, []store.Token) (map[string][]int, error) {
	return nil, ErrUnsupported
}
func (t *tx) Put(store.Version, []store.Token) (store.Version, error) {
	return store.Version{}, ErrUnsupported
}

func (t *tx) Reindex(string, string, int64, []store.Token) error { return ErrUnsupported }

func (t *tx) Meta(key string) ([]byte, error) {
	if v, ok := t.writes[key]; ok {
		if v == nil {
			return nil, fmt.Errorf("%w: meta %q", store.ErrNotFound, key)
		}
		return clone(v), nil
	}
	v, ok := t.s.meta[key]
	if !ok {
		return nil, fmt.Errorf("%w: meta %q", store.ErrNotFound, key)
	}
	return clone(v), nil
}

func (t *tx) MetaPrefix(prefix string) ([]store.KV, error) {
	keys := map[string][]byte{}
	for k, v := range t.s.meta {
		if strings.HasPrefix(k, prefix) {
			keys[k] = v
		}
	}
	for k, v := range t.writes {
		if strings.HasPrefix(k, prefix) {
			keys[k] = v
		}
	}
	var out []store.KV
	for k, v := range keys {
		if v != nil {
			out = append(out, store.KV{Key: k, Value: clone(v)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (t *tx) AuditSize() (int64, error) {
	return int64(len(t.s.leaves) + len(t.appended)), nil
}

func (t *tx) AuditLeaves(from, to int64) ([][]byte, error) {
	n, _ := t.AuditSize()
	if from < 0 || to < from {
		return nil, fmt.Errorf("memstore: audit leaves: bad range [%d, %d)", from, to)
	}
	if to > n {
		return nil, fmt.Errorf("%w: audit leaves [%d, %d) beyond size %d", store.ErrNotFound, from, to, n)
	}
	out := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		if i < int64(len(t.s.leaves)) {
			out = append(out, clone(t.s.leaves[i]))
		} else {
			out = append(out, clone(t.appended[i-int64(len(t.s.leaves))]))
		}
	}
	return out, nil
}

func (t *tx) SetMeta(key string, value []byte) error {
	t.writes[key] = clone(value)
	return nil
}

func (t *tx) CreateMeta(key string, value []byte) error {
	if _, err := t.Meta(key); err == nil {
		return fmt.Errorf("%w: meta %q", store.ErrExists, key)
	}
	return t.SetMeta(key, value)
}

func (t *tx) DeleteMeta(key string) error {
	t.writes[key] = nil
	return nil
}

func (t *tx) AppendAudit(leaf []byte) (int64, error) {
	t.appended = append(t.appended, clone(leaf))
	return int64(len(t.s.leaves) + len(t.appended) - 1), nil
}

// clone copies b, never returning nil (a nil map value means deleted).
func clone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }
