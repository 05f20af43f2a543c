package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// withCheckpoints sets the checkpointer's interval and limits
// (checkpoint.go).
func withCheckpoints(every time.Duration, limit, hard int64) Option {
	return func(o *options) { o.checkpointEvery, o.walLimit, o.walHardLimit = every, limit, hard }
}

// TestWALStartsOver writes many times the WAL limit while readers read
// without pause, with the TRUNCATE fallback out of reach: the WAL must
// still stay near the limit, started over by the writer between groups
// rather than growing with every commit.
func TestWALStartsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 50 MB")
	}
	const limit = 2 << 20
	dir := t.TempDir()
	b, err := Open(dir, withCheckpoints(20*time.Millisecond, limit, 1<<40))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wal := filepath.Join(dir, FileName+"-wal")
	ctx := context.Background()

	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				err := b.View(ctx, func(r store.Reader) error {
					_, err := r.Current("Observation", "o1")
					return err
				})
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		})
	}
	var peak int64
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 2048)
	const groups, perGroup = 500, 8
	for g := range groups {
		err := b.Update(ctx, func(w store.Writer) error {
			for i := range perGroup {
				tokens := make([]store.Token, 20)
				for k := range tokens {
					tokens[k] = fmt.Appendf(nil, "%016x", rng.Uint64())
				}
				v := store.Version{Type: "Observation", ID: fmt.Sprintf("o%d", g*perGroup+i), VID: 1, Updated: time.Now(), Body: body}
				if _, err := w.Put(v, tokens); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(wal); err == nil {
			peak = max(peak, fi.Size())
		}
	}
	stop.Store(true)
	wg.Wait()
	var dbSize int64
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		dbSize = fi.Size()
	}
	t.Logf("WAL peak %d KiB against a limit of %d KiB; database file %d KiB; %d reads", peak>>10, limit>>10, dbSize>>10, reads.Load())
	if reads.Load() < groups {
		t.Fatalf("only %d reads beside %d commits: the readers did not keep the WAL busy", reads.Load(), groups)
	}
	if peak > 4*limit {
		t.Errorf("the WAL grew to %d KiB, over 4 times its limit of %d KiB: it was not started over", peak>>10, limit>>10)
	}
}
