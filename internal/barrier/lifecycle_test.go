package barrier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// versionedKEK holds several testKEK versions; Wrap uses the newest.
type versionedKEK struct {
	mu       sync.RWMutex
	versions []*testKEK
}

func (v *versionedKEK) cur() *testKEK {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.versions[len(v.versions)-1]
}
func (v *versionedKEK) Current() string { return v.cur().name }
func (v *versionedKEK) Wrap(ctx context.Context, dek []byte) (Wrapped, error) {
	return v.cur().Wrap(ctx, dek)
}
func (v *versionedKEK) Unwrap(ctx context.Context, w Wrapped) ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, k := range v.versions {
		if k.name == w.KEK {
			return k.Unwrap(ctx, w)
		}
	}
	return nil, errors.New("versionedKEK: unknown version")
}
func (v *versionedKEK) add(t *testing.T) {
	k := newTestKEK(t)
	v.mu.Lock()
	v.versions = append(v.versions, k)
	v.mu.Unlock()
}

func TestDestroy(t *testing.T) {
	ctx := context.Background()
	kek := newTestKEK(t)
	st := openStore(t)
	b := openBarrier(t, kek, st, 100)
	c := Context("Patient", "a", "1")
	sa, err := b.Seal(ctx, "patient/a", c, []byte("alice"))
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := b.Seal(ctx, "patient/b", c, []byte("bob"))
	idA, _ := b.KeyFor(ctx, "patient/a")
	cached := b.cache.get(idA)
	if cached == nil {
		t.Fatal("key not cached after Seal")
	}
	id, err := b.Destroy(ctx, "patient/a")
	if err != nil || id != idA {
		t.Fatalf("Destroy = %s, %v; want %s", id, err, idA)
	}
	if !bytes.Equal(cached.raw, make([]byte, 32)) {
		t.Error("the destroyed key's cached bytes were not zeroed")
	}
	if got, err := b.Open(ctx, c, sa); got != nil || !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Open under destroyed key = %q, %v; want ErrKeyDestroyed", got, err)
	}
	if got, err := b.Open(ctx, c, sb); err != nil || string(got) != "bob" {
		t.Errorf("other key: Open = %q, %v", got, err)
	}
	if _, err := b.Seal(ctx, "patient/a", c, []byte("again")); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Seal under an erased name = %v; want ErrKeyDestroyed", err)
	}
	if id2, err := b.Destroy(ctx, "patient/a"); err != nil || id2 != idA {
		t.Errorf("second Destroy = %s, %v; want idempotent", id2, err)
	}
	if _, err := b.Destroy(ctx, "patient/never"); !errors.Is(err, ErrNoKey) {
		t.Errorf("Destroy of an unused name = %v; want ErrNoKey", err)
	}
	if _, err := b.KeyFor(ctx, "patient/never"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Destroy(ctx, indexName); err == nil {
		t.Error("Destroy of the index key succeeded")
	}
	// The record keeps only the times.
	for _, kv := range metaAll(t, st, metaKey+idA.String()) {
		var rec keyRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil || rec.Wrapped != nil || rec.Destroyed.IsZero() || rec.Created.IsZero() {
			t.Errorf("destroyed record = %s, %v", kv.Value, err)
		}
	}
	// A fresh barrier (another process, a restart) agrees.
	b2 := openBarrier(t, kek, st, 100)
	if _, err := b2.Open(ctx, c, sa); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("fresh barrier: Open = %v; want ErrKeyDestroyed", err)
	}
	ids, err := b2.Destroyed(ctx)
	if err != nil || len(ids) != 1 || ids[0] != idA {
		t.Errorf("Destroyed = %v, %v; want [%s]", ids, err, idA)
	}
	// Live: index, patient/b, patient/never.
	if u, _ := b2.KEKUsage(ctx); u["destroyed"] != 1 || u[kek.name] != 3 {
		t.Errorf("KEKUsage = %v", u)
	}
}

func TestCloseWipesKeys(t *testing.T) {
	ctx := context.Background()
	b, _ := newBarrier(t)
	c := Context("x")
	s, _ := b.Seal(ctx, "tenant/t", c, []byte("v"))
	id, _ := b.KeyFor(ctx, "tenant/t")
	k := b.cache.get(id)
	index := b.index
	b.Close()
	if !bytes.Equal(k.raw, make([]byte, 32)) || !bytes.Equal(index, make([]byte, len(index))) {
		t.Error("Close left key bytes in memory")
	}
	if _, err := b.Open(ctx, c, s); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close = %v; want ErrClosed", err)
	}
	if _, err := b.Seal(ctx, "tenant/t", c, []byte("v")); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close = %v; want ErrClosed", err)
	}
	if _, err := b.Destroy(ctx, "tenant/t"); !errors.Is(err, ErrClosed) {
		t.Errorf("Destroy after Close = %v; want ErrClosed", err)
	}
}

// TestRewrapUnderLoad rotates the KEK while writers and readers run: no
// operation fails, every live key ends under the new version, and the old
// version can then be dropped.
func TestRewrapUnderLoad(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	kek := &versionedKEK{}
	kek.add(t)
	old := kek.Current()
	b := openBarrier(t, kek, st, 64) // small cache: readers unwrap often
	type item struct {
		name   string
		sealed []byte
	}
	var items []item
	for i := range 300 {
		n := fmt.Sprintf("patient/%d", i)
		s, err := b.Seal(ctx, n, Context(n), []byte(n))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item{n, s})
	}
	var failures atomic.Int64
	var ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				it := items[(i*7+w*31)%len(items)]
				if got, err := b.Open(ctx, Context(it.name), it.sealed); err != nil || string(got) != it.name {
					failures.Add(1)
				}
				n := fmt.Sprintf("patient/new-%d-%d", w, i%50) // new keys while rotating
				if _, err := b.Seal(ctx, n, Context(n), []byte(n)); err != nil {
					failures.Add(1)
				}
				ops.Add(2)
			}
		}()
	}
	kek.add(t)
	n, err := b.Rewrap(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if failures.Load() != 0 {
		t.Errorf("%d of %d operations failed during rotation", failures.Load(), ops.Load())
	}
	if n < 300 {
		t.Errorf("Rewrap rewrapped %d keys; want at least 300", n)
	}
	// Keys created before the new version was added but after the listing
	// may remain: a second pass (as the CLI runs) finishes them.
	if _, err := b.Rewrap(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := b.KEKUsage(ctx)
	if err != nil || u[old] != 0 || u[kek.Current()] < 301 {
		t.Fatalf("KEKUsage after rotation = %v, %v; want nothing under %s", u, err, old)
	}
	// Retire the old version: a fresh barrier with only the new one reads all.
	kek.mu.Lock()
	kek.versions = kek.versions[1:]
	kek.mu.Unlock()
	b2 := openBarrier(t, kek, st, 1000)
	for _, it := range items {
		if got, err := b2.Open(ctx, Context(it.name), it.sealed); err != nil || string(got) != it.name {
			t.Fatalf("after retiring the old version: Open(%s) = %q, %v", it.name, got, err)
		}
	}
	t.Logf("%d operations during rotation, %d keys rewrapped", ops.Load(), n)
}

func TestRewrapLeavesDestroyedKeys(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	kek := &versionedKEK{}
	kek.add(t)
	b := openBarrier(t, kek, st, 100)
	s, _ := b.Seal(ctx, "patient/gone", Context("g"), []byte("g"))
	if _, err := b.Destroy(ctx, "patient/gone"); err != nil {
		t.Fatal(err)
	}
	kek.add(t)
	if _, err := b.Rewrap(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(ctx, Context("g"), s); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("after Rewrap a destroyed key opens: %v", err)
	}
}

// TestReopen: after Close and Reopen, old data opens and tokens are the same.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	b, _ := newBarrier(t)
	c := Context("x")
	s, _ := b.Seal(ctx, "tenant/t", c, []byte("v"))
	tok := b.Token("idx", "a")
	b.Close()
	if bytes.Equal(b.Token("idx", "a"), tok) {
		t.Error("a closed barrier computes real tokens")
	}
	if err := b.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Open(ctx, c, s); err != nil || string(got) != "v" {
		t.Errorf("Open after Reopen = %q, %v", got, err)
	}
	if !bytes.Equal(b.Token("idx", "a"), tok) {
		t.Error("tokens changed across Close and Reopen")
	}
}

// TestDestroyWithFailing: a failing companion write (the audit record)
// leaves the key intact.
func TestDestroyWithFailing(t *testing.T) {
	ctx := context.Background()
	b, st := newBarrier(t)
	s, _ := b.Seal(ctx, "patient/x", Context("x"), []byte("x"))
	boom := errors.New("audit down")
	if _, err := b.Destroy(ctx, "patient/x", func(store.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Destroy = %v; want the companion's error", err)
	}
	if got, err := b.Open(ctx, Context("x"), s); err != nil || string(got) != "x" {
		t.Fatalf("key destroyed although its audit record failed: %v", err)
	}
	if _, err := b.Destroy(ctx, "patient/x", func(tx store.Writer) error { return tx.SetMeta("erased-note", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if kvs := metaAll(t, st, "erased-note"); len(kvs) != 1 {
		t.Error("companion write not committed")
	}
}

// TestDestroyIDAfterRestore: a store restored from before an erasure still
// holds the key; destroying the listed id makes the erasure hold again.
func TestDestroyIDAfterRestore(t *testing.T) {
	ctx := context.Background()
	kek := newTestKEK(t)
	st := openStore(t)
	b := openBarrier(t, kek, st, 100)
	s, _ := b.Seal(ctx, "patient/r", Context("r"), []byte("r"))
	id, _ := b.KeyFor(ctx, "patient/r")
	if found, err := b.DestroyID(ctx, id); err != nil || !found {
		t.Fatalf("DestroyID = %v, %v", found, err)
	}
	if _, err := b.Open(ctx, Context("r"), s); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Open after DestroyID = %v", err)
	}
	if found, err := b.DestroyID(ctx, KeyID{1, 2, 3}); err != nil || found {
		t.Errorf("DestroyID of an unknown id = %v, %v", found, err)
	}
}
