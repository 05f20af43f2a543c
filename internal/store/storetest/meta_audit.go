package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

func testMeta(t *testing.T, b *closer) {
	view(t, b, func(r store.Reader) error {
		if _, err := r.Meta("k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Meta of missing key: err = %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, b, func(w store.Writer) error { return w.SetMeta("k", []byte("v1")) })
	update(t, b, func(w store.Writer) error { return w.SetMeta("k", []byte("v2")) })
	update(t, b, func(w store.Writer) error { return w.SetMeta("empty", nil) })
	update(t, b, func(w store.Writer) error { return w.CreateMeta("c", []byte{0, 1, 0}) })
	err := b.Update(context.Background(), func(w store.Writer) error { return w.CreateMeta("c", []byte("other")) })
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateMeta of existing key: err = %v, want ErrExists", err)
	}
	err = b.Update(context.Background(), func(w store.Writer) error { return w.CreateMeta("k", []byte("other")) })
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateMeta over SetMeta key: err = %v, want ErrExists", err)
	}
	view(t, b, func(r store.Reader) error {
		for k, want := range map[string][]byte{"k": []byte("v2"), "c": {0, 1, 0}, "empty": {}} {
			got, err := r.Meta(k)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Meta(%q) = %q, %v; want %q", k, got, err, want)
			}
		}
		return nil
	})
	update(t, b, func(w store.Writer) error {
		if err := w.DeleteMeta("k"); err != nil {
			return err
		}
		if err := w.DeleteMeta("never-there"); err != nil {
			return fmt.Errorf("DeleteMeta of absent key: %w", err)
		}
		// A deleted key can be created again.
		return w.CreateMeta("c2", []byte("x"))
	})
	update(t, b, func(w store.Writer) error {
		if err := w.DeleteMeta("c"); err != nil {
			return err
		}
		return w.CreateMeta("c", []byte("again"))
	})
	view(t, b, func(r store.Reader) error {
		if _, err := r.Meta("k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Meta after DeleteMeta: err = %v, want ErrNotFound", err)
		}
		if got, err := r.Meta("c"); err != nil || string(got) != "again" {
			t.Errorf("Meta(c) = %q, %v; want \"again\"", got, err)
		}
		return nil
	})
}

func testMetaPrefix(t *testing.T, b *closer) {
	keys := []string{"a/10", "a/2", "a/1", "a", "ab", "b/1", "a/\xff", "a0", "\xff\xff"}
	update(t, b, func(w store.Writer) error {
		for _, k := range keys {
			if err := w.SetMeta(k, []byte("v:"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	cases := map[string][]string{
		"a/":     {"a/1", "a/10", "a/2", "a/\xff"},
		"a":      {"a", "a/1", "a/10", "a/2", "a/\xff", "a0", "ab"},
		"b/":     {"b/1"},
		"c":      nil,
		"a/1":    {"a/1", "a/10"},
		"\xff":   {"\xff\xff"},
		"a/\xff": {"a/\xff"},
	}
	all := append([]string(nil), keys...)
	sort.Strings(all)
	cases[""] = all
	view(t, b, func(r store.Reader) error {
		for prefix, want := range cases {
			kvs, err := r.MetaPrefix(prefix)
			if err != nil {
				t.Errorf("MetaPrefix(%q): %v", prefix, err)
				continue
			}
			var got []string
			for _, kv := range kvs {
				got = append(got, kv.Key)
				if string(kv.Value) != "v:"+kv.Key {
					t.Errorf("MetaPrefix(%q): %q = %q", prefix, kv.Key, kv.Value)
				}
			}
			if !eqStrings(got, want) {
				t.Errorf("MetaPrefix(%q) = %q, want %q", prefix, got, want)
			}
		}
		return nil
	})
}

func testAudit(t *testing.T, b *closer) {
	view(t, b, func(r store.Reader) error {
		if n, err := r.AuditSize(); err != nil || n != 0 {
			t.Errorf("AuditSize of empty log = %d, %v", n, err)
		}
		return nil
	})
	// Leaves are any bytes: short ones, ones that start like the stored
	// form of a compressed leaf (store.PackLeaf), long repetitive ones that
	// a backend compresses.
	leaves := [][]byte{[]byte("zero"), {0xff, 1, 0, 0}, bytes.Repeat([]byte(`{"resourceType":"AuditEvent"},`), 60)}
	update(t, b, func(w store.Writer) error {
		for i, l := range leaves {
			idx, err := w.AppendAudit(l)
			if err != nil {
				return err
			}
			if idx != int64(i) {
				t.Errorf("AppendAudit #%d returned index %d", i, idx)
			}
		}
		return nil
	})
	update(t, b, func(w store.Writer) error {
		idx, err := w.AppendAudit([]byte("three"))
		if err == nil && idx != 3 {
			t.Errorf("AppendAudit in a second Update returned %d, want 3", idx)
		}
		return err
	})
	leaves = append(leaves, []byte("three"))
	view(t, b, func(r store.Reader) error {
		if n, err := r.AuditSize(); err != nil || n != 4 {
			t.Errorf("AuditSize = %d, %v; want 4", n, err)
		}
		for _, rg := range [][2]int64{{0, 4}, {1, 3}, {3, 4}, {2, 2}, {4, 4}} {
			got, err := r.AuditLeaves(rg[0], rg[1])
			if err != nil {
				t.Errorf("AuditLeaves%v: %v", rg, err)
				continue
			}
			want := leaves[rg[0]:rg[1]]
			if len(got) != len(want) {
				t.Errorf("AuditLeaves%v: %d leaves, want %d", rg, len(got), len(want))
				continue
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("AuditLeaves%v[%d] = %q, want %q", rg, i, got[i], want[i])
				}
			}
		}
		// A range past the end must not quietly return fewer leaves.
		if got, err := r.AuditLeaves(2, 5); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AuditLeaves(2, 5) of 4 leaves = %d leaves, %v; want ErrNotFound", len(got), err)
		}
		for _, rg := range [][2]int64{{3, 2}, {-1, 1}} {
			if got, err := r.AuditLeaves(rg[0], rg[1]); err == nil {
				t.Errorf("AuditLeaves%v = %d leaves, want an error", rg, len(got))
			}
		}
		return nil
	})
}

// testAuditConcurrent: concurrent Updates, some failing, get dense indexes
// in commit order; each Update's leaves are consecutive and every kept leaf
// is at the index it was given.
func testAuditConcurrent(t *testing.T, b *closer) {
	const workers, rounds = 16, 8
	var mu sync.Mutex
	kept := map[int64]string{}
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			last := int64(-1)
			for i := range rounds {
				fail := (g+i)%4 == 0
				var got []int64
				var names []string
				err := b.Update(context.Background(), func(w store.Writer) error {
					got, names = got[:0], names[:0]
					for k := range 1 + (g+i)%3 {
						name := fmt.Sprintf("g%d-r%d-%d", g, i, k)
						idx, err := w.AppendAudit([]byte(name))
						if err != nil {
							return err
						}
						got, names = append(got, idx), append(names, name)
					}
					if fail {
						return errTest
					}
					return nil
				})
				if fail {
					if !errors.Is(err, errTest) {
						t.Errorf("failing Update: err = %v, want errTest", err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
				for k := range got {
					if got[k] != got[0]+int64(k) {
						t.Errorf("one Update's indexes not consecutive: %v", got)
					}
				}
				if got[0] <= last {
					t.Errorf("later Update of one goroutine got index %d after %d", got[0], last)
				}
				last = got[len(got)-1]
				mu.Lock()
				for k, idx := range got {
					if prev, dup := kept[idx]; dup {
						t.Errorf("index %d given to %s and %s", idx, prev, names[k])
					}
					kept[idx] = names[k]
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	view(t, b, func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil || n != int64(len(kept)) {
			t.Errorf("AuditSize = %d, %v; want %d kept leaves", n, err, len(kept))
			return nil
		}
		leaves, err := r.AuditLeaves(0, n)
		if err != nil {
			return err
		}
		for i, l := range leaves {
			if want, ok := kept[int64(i)]; !ok || string(l) != want {
				t.Errorf("leaf %d = %q, want %q", i, l, want)
			}
		}
		return nil
	})
}
