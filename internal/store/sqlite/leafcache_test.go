package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// TestAuditLeavesCacheMatchesDatabase appends leaves from concurrent
// Updates, a third of which fail after appending (so groups fall back to
// one savepoint per fn and give those indexes back), and checks that the
// leaves Views get (now from the cache) are exactly the audit table's rows,
// read with SQL, and that no failed fn's leaf is among them.
func TestAuditLeavesCacheMatchesDatabase(t *testing.T) {
	be := openBackend(t, t.TempDir())
	ctx := context.Background()
	errFail := errors.New("fn fails after appending")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				err := be.Update(ctx, func(w store.Writer) error {
					for k := range 1 + i%3 {
						if _, err := w.AppendAudit(fmt.Appendf(nil, "g%d-i%d-k%d", g, i, k)); err != nil {
							return err
						}
					}
					if i%3 == 2 {
						return errFail
					}
					return nil
				})
				if err != nil && !errors.Is(err, errFail) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	var fromCache [][]byte
	var size int64
	if err := be.View(ctx, func(r store.Reader) (err error) {
		if size, err = r.AuditSize(); err != nil {
			return err
		}
		fromCache, err = r.AuditLeaves(0, size)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := be.leaves.get(0, size); !ok {
		t.Fatalf("the cache does not hold the %d leaves just committed", size)
	}
	d := <-be.readers // the pool's connections all wait in readers
	defer func() { be.readers <- d }()
	rows, err := d.c.QueryContext(ctx, `SELECT idx, leaf FROM audit ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int64
	for ; rows.Next(); n++ {
		var idx int64
		var leaf []byte
		if err := rows.Scan(&idx, &leaf); err != nil {
			t.Fatal(err)
		}
		if idx != n || n >= int64(len(fromCache)) || !bytes.Equal(fromCache[n], leaf) {
			t.Fatalf("row %d (index %d) = %q; the reader got %d leaves", n, idx, leaf, len(fromCache))
		}
		var g, i, k int
		if _, err := fmt.Sscanf(string(leaf), "g%d-i%d-k%d", &g, &i, &k); err != nil || i%3 == 2 {
			t.Fatalf("leaf %q is not one of a committed Update", leaf)
		}
	}
	if n != size || int64(len(fromCache)) != n {
		t.Fatalf("%d rows, size %d, %d leaves from the reader", n, size, len(fromCache))
	}
	// Each goroutine's Updates with i%3 != 2 commit 1+i%3 leaves.
	want := int64(0)
	for i := range 40 {
		if i%3 != 2 {
			want += int64(1 + i%3)
		}
	}
	if n != 8*want {
		t.Fatalf("%d leaves committed, want %d", n, 8*want)
	}
	// A copy: changing what a reader got changes nothing for the next.
	fromCache[0][0] ^= 0xff
	if again, _ := be.leaves.get(0, 1); again[0][0] == fromCache[0][0] {
		t.Fatal("the cache handed out its own leaf")
	}
}

// TestLeafCacheBounds checks the cache's run and size rules: a leaf that
// does not continue the run starts a new one, and the oldest leaves go
// once the cache holds more than leafCacheBytes.
func TestLeafCacheBounds(t *testing.T) {
	var c leafCache
	leaf := func(i int64, n int) stagedLeaf { return stagedLeaf{idx: i, leaf: bytes.Repeat([]byte{byte(i)}, n)} }
	c.add([]stagedLeaf{leaf(10, 1), leaf(11, 1), leaf(12, 0)})
	if ls, ok := c.get(10, 13); !ok || len(ls) != 3 || ls[1][0] != 11 || ls[2] == nil {
		t.Fatalf("get(10, 13) = %v, %v", ls, ok)
	}
	for _, r := range [][2]int64{{9, 11}, {12, 14}} {
		if _, ok := c.get(r[0], r[1]); ok {
			t.Fatalf("get(%d, %d) answered beyond the run [10, 13)", r[0], r[1])
		}
	}
	c.add([]stagedLeaf{leaf(20, 1)}) // a gap: a new run
	if _, ok := c.get(12, 13); ok {
		t.Fatal("a leaf of the old run survived a gap")
	}
	if _, ok := c.get(20, 21); !ok {
		t.Fatal("the new run is not cached")
	}
	const big = 1 << 20
	var ls []stagedLeaf
	for i := range int64(20) {
		ls = append(ls, leaf(21+i, big))
	}
	c.add(ls) // 20 MiB and a byte in total: the first five go
	if c.bytes > leafCacheBytes || c.base != 25 || len(c.leaves) != 16 {
		t.Fatalf("after 20 MiB: base %d, %d leaves, %d bytes", c.base, len(c.leaves), c.bytes)
	}
	if _, ok := c.get(24, 26); ok {
		t.Fatal("an evicted leaf was served")
	}
	if got, ok := c.get(25, 41); !ok || len(got) != 16 || got[15][0] != 40 {
		t.Fatal("the newest leaves are not all served")
	}
}
