package fhirapi

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// memStore is a test double store.Backend for the fuzz target (the SQLite
// backend is far too slow under the fuzzer's coverage instrumentation).
// Updates are serialised under one lock and undone on error; a View holds
// the read lock, so it sees a consistent state but must not call Update.
// It keeps no data beyond the process and is not a conformant backend.
type memStore struct {
	mu       sync.RWMutex
	versions map[string][]store.Version // type\x00id -> versions, oldest first
	tokens   map[string][]store.Token
	log      []store.Version // by Seq
	meta     map[string][]byte
	leaves   [][]byte
}

var _ store.Backend = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{versions: map[string][]store.Version{}, tokens: map[string][]store.Token{}, meta: map[string][]byte{}}
}

func (s *memStore) View(ctx context.Context, fn func(store.Reader) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(&memTx{s: s})
}

func (s *memStore) Update(ctx context.Context, fn func(store.Writer) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memTx{s: s}
	if err := fn(tx); err != nil {
		for i := len(tx.undo) - 1; i >= 0; i-- {
			tx.undo[i]()
		}
		return err
	}
	return nil
}

func (s *memStore) Close() error { return nil }

type memTx struct {
	s    *memStore
	undo []func()
}

func memKey(typ, id string) string { return typ + "\x00" + id }

func (t *memTx) Current(typ, id string) (store.Version, error) {
	vs := t.s.versions[memKey(typ, id)]
	if len(vs) == 0 {
		return store.Version{}, store.ErrNotFound
	}
	return vs[len(vs)-1], nil
}

func (t *memTx) CurrentMany(typ string, ids []string) ([]store.Version, error) {
	var out []store.Version
	for _, id := range ids {
		if v, err := t.Current(typ, id); err == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

func (t *memTx) Get(typ, id string, vid int64) (store.Version, error) {
	vs := t.s.versions[memKey(typ, id)]
	if vid < 1 || vid > int64(len(vs)) {
		return store.Version{}, store.ErrNotFound
	}
	return vs[vid-1], nil
}

func (t *memTx) History(q store.HistoryQuery) ([]store.Version, error) {
	var out []store.Version
	for i := len(t.s.log) - 1; i >= 0 && (q.Limit == 0 || len(out) < q.Limit); i-- {
		v := t.s.log[i]
		if q.Type != "" && v.Type != q.Type || q.ID != "" && v.ID != q.ID || v.Updated.Before(q.Since) || q.BeforeSeq != 0 && v.Seq >= q.BeforeSeq {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

func (t *memTx) Match(q store.MatchQuery) ([]string, error) {
	var ids []string
	for k, vs := range t.s.versions {
		typ, id, _ := strings.Cut(k, "\x00")
		if typ != q.Type || vs[len(vs)-1].Deleted || id <= q.After && q.After != "" {
			continue
		}
		if t.matches(k, q.All) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if q.Limit > 0 && len(ids) > q.Limit {
		ids = ids[:q.Limit]
	}
	return ids, nil
}

func (t *memTx) matches(k string, all [][]store.Token) bool {
	for _, group := range all {
		hit := false
		for _, want := range group {
			for _, have := range t.s.tokens[k] {
				hit = hit || bytes.Equal(want, have)
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func (t *memTx) Count(q store.MatchQuery) (int, error) {
	q.Limit = 0
	ids, err := t.Match(q)
	return len(ids), err
}

func (t *memTx) Carried(typ string, ids []string, among []store.Token) (map[string][]int, error) {
	out := map[string][]int{}
	for _, id := range ids {
		for i, want := range among {
			if t.matches(memKey(typ, id), [][]store.Token{{want}}) {
				out[id] = append(out[id], i)
			}
		}
	}
	return out, nil
}

func (t *memTx) Meta(key string) ([]byte, error) {
	v, ok := t.s.meta[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

func (t *memTx) MetaPrefix(prefix string) ([]store.KV, error) {
	var out []store.KV
	for k, v := range t.s.meta {
		if strings.HasPrefix(k, prefix) {
			out = append(out, store.KV{Key: k, Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (t *memTx) AuditSize() (int64, error) { return int64(len(t.s.leaves)), nil }

func (t *memTx) AuditLeaves(from, to int64) ([][]byte, error) {
	if from < 0 || to < from || to > int64(len(t.s.leaves)) {
		return nil, fmt.Errorf("memstore: bad audit range: %w", store.ErrNotFound)
	}
	return t.s.leaves[from:to], nil
}

func (t *memTx) Put(v store.Version, tokens []store.Token) (store.Version, error) {
	k := memKey(v.Type, v.ID)
	old, oldTokens := t.s.versions[k], t.s.tokens[k]
	if v.VID != int64(len(old))+1 {
		return store.Version{}, store.ErrConflict
	}
	v.Seq = int64(len(t.s.log)) + 1
	v.Body = bytes.Clone(v.Body)
	t.s.versions[k] = append(old[:len(old):len(old)], v)
	t.s.log = append(t.s.log, v)
	if v.Deleted {
		tokens = nil
	}
	t.s.tokens[k] = tokens
	t.undo = append(t.undo, func() {
		t.s.versions[k], t.s.tokens[k] = old, oldTokens
		t.s.log = t.s.log[:len(t.s.log)-1]
	})
	return v, nil
}

func (t *memTx) Reindex(typ, id string, vid int64, tokens []store.Token) error {
	k := memKey(typ, id)
	vs, old := t.s.versions[k], t.s.tokens[k]
	if len(vs) == 0 || int64(len(vs)) != vid || vs[len(vs)-1].Deleted {
		return store.ErrConflict
	}
	t.s.tokens[k] = tokens
	t.undo = append(t.undo, func() { t.s.tokens[k] = old })
	return nil
}

func (t *memTx) SetMeta(key string, value []byte) error {
	old, had := t.s.meta[key]
	t.s.meta[key] = bytes.Clone(value)
	t.undo = append(t.undo, func() {
		if had {
			t.s.meta[key] = old
		} else {
			delete(t.s.meta, key)
		}
	})
	return nil
}

func (t *memTx) CreateMeta(key string, value []byte) error {
	if _, ok := t.s.meta[key]; ok {
		return store.ErrExists
	}
	return t.SetMeta(key, value)
}

func (t *memTx) DeleteMeta(key string) error {
	old, had := t.s.meta[key]
	delete(t.s.meta, key)
	t.undo = append(t.undo, func() {
		if had {
			t.s.meta[key] = old
		}
	})
	return nil
}

func (t *memTx) AppendAudit(leaf []byte) (int64, error) {
	t.s.leaves = append(t.s.leaves, bytes.Clone(leaf))
	t.undo = append(t.undo, func() { t.s.leaves = t.s.leaves[:len(t.s.leaves)-1] })
	return int64(len(t.s.leaves)) - 1, nil
}
