package smart

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// memStore is an in-memory store holding meta only (all this package and
// the barrier use). The fuzz target runs on it: fuzzing instruments every
// non-standard package, and an instrumented SQLite is too slow to fuzz.
type memStore struct {
	mu   sync.Mutex
	meta map[string][]byte
}

var errMem = errors.New("memStore: meta only")

func newMemStore() *memStore { return &memStore{meta: map[string][]byte{}} }

func (m *memStore) View(ctx context.Context, fn func(store.Reader) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(memTx{m: m.meta})
}

func (m *memStore) Update(ctx context.Context, fn func(store.Writer) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := memTx{m: maps.Clone(m.meta)}
	if err := fn(tx); err != nil {
		return err
	}
	m.meta = tx.m
	return nil
}

func (m *memStore) Close() error { return nil }

type memTx struct{ m map[string][]byte }

func (t memTx) Current(string, string) (store.Version, error) {
	return store.Version{}, store.ErrNotFound
}
func (t memTx) CurrentMany(string, []string) ([]store.Version, error) { return nil, nil }
func (t memTx) Get(string, string, int64) (store.Version, error) {
	return store.Version{}, store.ErrNotFound
}
func (t memTx) History(store.HistoryQuery) ([]store.Version, error) { return nil, nil }
func (t memTx) Match(store.MatchQuery) ([]string, error)            { return nil, nil }
func (t memTx) Count(store.MatchQuery) (int, error)                 { return 0, nil }
func (t memTx) Carried(string, []string, []store.Token) (map[string][]int, error) {
	return nil, errMem
}
func (t memTx) AuditSize() (int64, error)                  { return 0, nil }
func (t memTx) AuditLeaves(int64, int64) ([][]byte, error) { return nil, errMem }
func (t memTx) Put(store.Version, []store.Token) (store.Version, error) {
	return store.Version{}, errMem
}
func (t memTx) AppendAudit([]byte) (int64, error)                  { return 0, errMem }
func (t memTx) Reindex(string, string, int64, []store.Token) error { return errMem }

func (t memTx) Meta(k string) ([]byte, error) {
	v, ok := t.m[k]
	if !ok {
		return nil, store.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (t memTx) MetaPrefix(p string) ([]store.KV, error) {
	var out []store.KV
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		if strings.HasPrefix(k, p) {
			out = append(out, store.KV{Key: k, Value: slices.Clone(t.m[k])})
		}
	}
	return out, nil
}

func (t memTx) SetMeta(k string, v []byte) error { t.m[k] = slices.Clone(v); return nil }
func (t memTx) CreateMeta(k string, v []byte) error {
	if _, ok := t.m[k]; ok {
		return store.ErrExists
	}
	t.m[k] = slices.Clone(v)
	return nil
}
func (t memTx) DeleteMeta(k string) error { delete(t.m, k); return nil }
