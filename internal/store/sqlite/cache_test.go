package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

func withCacheBytes(n int64) Option { return func(o *options) { o.cacheBytes = n } }

// TestReadCurrentOneSnapshot writes rounds: each Update puts a new version
// of every one of eight resources, so that in any snapshot all eight have
// the same version. Readers read random subsets with ReadCurrent (some
// from the cache, some not) while the rounds commit: every answer must
// show one version for all it returns (one snapshot, never cached versions
// beside newer ones), and never one older than the last round
// acknowledged before the read began.
func TestReadCurrentOneSnapshot(t *testing.T) {
	be, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	var acked atomic.Int64
	round := func(vid int64) error {
		return be.Update(ctx, func(w store.Writer) error {
			for _, id := range ids {
				v := store.Version{Type: "Patient", ID: id, VID: vid, Updated: time.Now(), Body: fmt.Appendf(nil, "%s-%d", id, vid)}
				if _, err := w.Put(v, []store.Token{store.Token("t:" + id)}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := round(1); err != nil {
		t.Fatal(err)
	}
	acked.Store(1)

	rounds := int64(300)
	if testing.Short() {
		rounds = 60
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, mixed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				want := acked.Load()
				sub := make([]string, 0, len(ids))
				for _, id := range ids {
					if rand.IntN(2) == 0 {
						sub = append(sub, id)
					}
				}
				if len(sub) == 0 {
					continue
				}
				hits := 0
				for _, id := range sub {
					if _, ok := be.cache.get("Patient", id, be.cache.generation()); ok {
						hits++
					}
				}
				if hits > 0 && hits < len(sub) {
					mixed.Add(1)
				}
				vs, err := be.ReadCurrent(ctx, "Patient", sub)
				if err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
				if len(vs) != len(sub) {
					t.Errorf("read %d of %d resources", len(vs), len(sub))
					return
				}
				for i, v := range vs {
					if v.ID != sub[i] || v.VID != vs[0].VID || v.VID < want || string(v.Body) != fmt.Sprintf("%s-%d", v.ID, v.VID) {
						t.Errorf("read %s/%d (body %q) among %s/%d, after round %d was acknowledged", v.ID, v.VID, v.Body, vs[0].ID, vs[0].VID, want)
						return
					}
				}
			}
		})
	}
	for vid := int64(2); vid <= rounds && !t.Failed(); vid++ {
		if err := round(vid); err != nil {
			t.Fatal(err)
		}
		acked.Store(vid)
	}
	close(stop)
	wg.Wait()
	if mixed.Load() == 0 {
		t.Errorf("no read found part of its resources in the cache (%d reads): the test did not test the mixed case", reads.Load())
	}
	t.Logf("%d reads, %d of them partly cached, over %d rounds", reads.Load(), mixed.Load(), rounds)
}

// TestVersionCacheBounded reads many more versions than the cache may
// hold: it stays within its bound, keeps what fits, answers every read
// right, and the body a caller gets is its own to change.
func TestVersionCacheBounded(t *testing.T) {
	const limit = 64 << 10
	be, err := Open(t.TempDir(), withCacheBytes(limit))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	body := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000) }
	const n = 500
	if err := be.Update(ctx, func(w store.Writer) error {
		for i := range n {
			v := store.Version{Type: "Patient", ID: fmt.Sprint(i), VID: 1, Updated: time.Now(), Body: body(i)}
			if _, err := w.Put(v, nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for pass := range 2 {
		for i := range n {
			vs, err := be.ReadCurrent(ctx, "Patient", []string{fmt.Sprint(i)})
			if err != nil || len(vs) != 1 || !bytes.Equal(vs[0].Body, body(i)) {
				t.Fatalf("pass %d: read %d: %v (%d versions)", pass, i, err, len(vs))
			}
			vs[0].Body[0]++ // the caller's copy
			if be.cache.vs.bytes > limit {
				t.Fatalf("cache holds %d bytes, limit %d", be.cache.vs.bytes, limit)
			}
		}
	}
	held := len(be.cache.vs.m)
	if min := limit / 2 / 1200; held < min {
		t.Errorf("cache holds %d versions, want at least %d", held, min)
	}
	var sum int64
	for _, v := range be.cache.vs.m {
		sum += entryBytes(v)
	}
	if sum != be.cache.vs.bytes {
		t.Errorf("cache counts %d bytes, holds %d", be.cache.vs.bytes, sum)
	}
	if vs, err := be.ReadCurrent(ctx, "Patient", []string{"nope"}); err != nil || len(vs) != 0 {
		t.Errorf("missing resource: %v, %d versions", err, len(vs))
	}
}

// TestReadCurrentOrder: versions come back in the order of the ids asked
// for, an id asked twice twice and an absent one not at all, whether all,
// some or none of them are cached, and whichever comes first.
func TestReadCurrentOrder(t *testing.T) {
	be := openBackend(t, t.TempDir())
	ctx := context.Background()
	if err := be.Update(ctx, func(w store.Writer) error {
		for _, id := range []string{"a", "b", "c", "d"} {
			if _, err := w.Put(store.Version{Type: "Patient", ID: id, VID: 1, Updated: time.Now(), Body: []byte(id)}, nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ask := []string{"a", "b", "a", "zz", "c", "b", "d"}
	const want = "a b a c b d"
	read := func(ids []string) string {
		t.Helper()
		vs, err := be.ReadCurrent(ctx, "Patient", ids)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			if string(v.Body) != v.ID {
				t.Fatalf("%s holds %q", v.ID, v.Body)
			}
			got = append(got, v.ID)
		}
		return strings.Join(got, " ")
	}
	if got := read(ask); got != want { // none cached
		t.Fatalf("nothing cached: %s, want %s", got, want)
	}
	be.cache.committing() // drops them all, as a commit putting them would
	be.cache.ended([]versionKey{{"Patient", "a"}, {"Patient", "b"}, {"Patient", "c"}, {"Patient", "d"}})
	if len(be.cache.vs.m) != 0 {
		t.Fatalf("%d versions still cached", len(be.cache.vs.m))
	}
	read([]string{"a", "c"})
	if got := read(ask); got != want { // a cached prefix, then a miss
		t.Fatalf("a and c cached: %s, want %s", got, want)
	}
	if got := read(ask); got != want { // all but zz cached
		t.Fatalf("all cached: %s, want %s", got, want)
	}
	if got := read([]string{"d", "c", "d"}); got != "d c d" {
		t.Fatalf("all cached, no miss: %s", got)
	}
}

// TestReadCurrentAfterClose: a closed store answers no read, not even one
// the cache could answer.
func TestReadCurrentAfterClose(t *testing.T) {
	be, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := be.Update(ctx, func(w store.Writer) error {
		_, err := w.Put(store.Version{Type: "Patient", ID: "p", VID: 1, Updated: time.Now(), Body: []byte("x")}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if vs, err := be.ReadCurrent(ctx, "Patient", []string{"p"}); err != nil || len(vs) != 1 {
		t.Fatalf("read: %v, %d versions", err, len(vs))
	}
	if _, ok := be.cache.get("Patient", "p", be.cache.generation()); !ok {
		t.Fatal("the read left nothing in the cache")
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if vs, err := be.ReadCurrent(ctx, "Patient", []string{"p"}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("read after Close: %v, %d versions; want ErrClosed", err, len(vs))
	}
}
