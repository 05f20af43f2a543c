package barrier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDestroyReachesOtherNodes: two barriers over one store stand for two
// nodes on one PostgreSQL. Both hold the patient's key in their caches;
// the erasure on one takes effect there at once and on the other at its
// next SyncDestroyed, without a restart.
func TestDestroyReachesOtherNodes(t *testing.T) {
	ctx := context.Background()
	kek := newTestKEK(t)
	st := openStore(t)
	a := openBarrier(t, kek, st, 100)
	b := openBarrier(t, kek, st, 100)
	s, err := a.Seal(ctx, "patient/p", Context("p"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	keep, _ := a.Seal(ctx, "patient/q", Context("q"), []byte("kept"))
	for _, x := range []*Barrier{a, b} { // both caches hold both keys
		if _, err := x.Open(ctx, Context("p"), s); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Open(ctx, Context("q"), keep); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Destroy(ctx, "patient/p"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(ctx, Context("p"), s); !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("the erasing node still opens the patient's data: %v", err)
	}
	if got, err := b.Open(ctx, Context("p"), s); err != nil || string(got) != "secret" {
		t.Fatalf("control: the other node's cache should still hold the key before it syncs: %q, %v", got, err)
	}
	if n, err := b.SyncDestroyed(ctx); err != nil || n != 1 {
		t.Fatalf("SyncDestroyed = %d, %v; want 1 newly destroyed key", n, err)
	}
	if _, err := b.Open(ctx, Context("p"), s); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("after SyncDestroyed the other node still opens the patient's data: %v", err)
	}
	if got, err := b.Open(ctx, Context("q"), keep); err != nil || string(got) != "kept" {
		t.Errorf("SyncDestroyed dropped another patient's key: %q, %v", got, err)
	}
	if n, err := b.SyncDestroyed(ctx); err != nil || n != 0 {
		t.Errorf("second SyncDestroyed = %d, %v; want 0", n, err)
	}
	// DestroyID (a restore re-applying an erasure) leaves a marker too.
	id, _ := a.KeyFor(ctx, "patient/q")
	if _, err := a.DestroyID(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, err := b.SyncDestroyed(ctx); err != nil || n != 1 {
		t.Errorf("SyncDestroyed after DestroyID = %d, %v; want 1", n, err)
	}
	if _, err := b.Open(ctx, Context("q"), keep); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("a key destroyed by id still opens on the other node: %v", err)
	}
}

// TestDestroyDuringReads: readers unwrapping the key while it is destroyed
// cannot leave it in the cache; once Destroy has returned, every new Open
// fails.
func TestDestroyDuringReads(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		b, _ := newBarrier(t)
		name := fmt.Sprintf("patient/r%d", round)
		s, _ := b.Seal(ctx, name, Context("r"), []byte("r"))
		b.cache.purge() // readers start by unwrapping from the store
		var destroyed atomic.Bool
		var late atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < 50; i++ {
					after := destroyed.Load()
					_, err := b.Open(ctx, Context("r"), s)
					if after && err == nil {
						late.Add(1)
					}
					if i%5 == 0 {
						b.cache.purge() // force fresh unwraps racing the destruction
					}
				}
			}()
		}
		close(start)
		if _, err := b.Destroy(ctx, name); err != nil {
			t.Fatal(err)
		}
		destroyed.Store(true)
		wg.Wait()
		if late.Load() != 0 {
			t.Fatalf("round %d: %d reads opened the data after Destroy returned", round, late.Load())
		}
		if _, err := b.Open(ctx, Context("r"), s); !errors.Is(err, ErrKeyDestroyed) {
			t.Fatalf("round %d: after the readers ended, Open = %v; want ErrKeyDestroyed", round, err)
		}
	}
}

// TestRewrapProgress: the progress report starts with the number of keys
// to rewrap and ends with all of them done.
func TestRewrapProgress(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	kek := &versionedKEK{}
	kek.add(t)
	b := openBarrier(t, kek, st, 1000)
	for i := range 600 {
		n := fmt.Sprintf("patient/%d", i)
		if _, err := b.Seal(ctx, n, Context(n), []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	kek.add(t)
	var calls [][2]int
	n, err := b.RewrapProgress(ctx, func(done, todo int) { calls = append(calls, [2]int{done, todo}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 3 || calls[0] != [2]int{0, 601} || calls[len(calls)-1] != [2]int{601, 601} || n != 601 {
		t.Fatalf("progress %v, rewrapped %d; want from 0 of 601 (600 patients and the index key) to 601 of 601 in batches", calls, n)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] {
			t.Errorf("progress went back: %v", calls)
		}
	}
}

// TestNoteDestroyedWakesWatcher: a watcher with a long interval drops a key
// destroyed elsewhere as soon as it is told (a store notification), not at
// its next tick.
func TestNoteDestroyedWakesWatcher(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kek := newTestKEK(t)
	st := openStore(t)
	a := openBarrier(t, kek, st, 100)
	b := openBarrier(t, kek, st, 100)
	s, _ := a.Seal(ctx, "patient/w", Context("w"), []byte("w"))
	if _, err := b.Open(ctx, Context("w"), s); err != nil {
		t.Fatal(err)
	}
	go b.WatchDestroyed(ctx, time.Hour, slog.New(slog.DiscardHandler))
	if _, err := a.Destroy(ctx, "patient/w"); err != nil {
		t.Fatal(err)
	}
	b.NoteDestroyed()
	deadline := time.Now().Add(30 * time.Second) // a failure bound; it takes milliseconds
	for {
		if _, err := b.Open(ctx, Context("w"), s); errors.Is(err, ErrKeyDestroyed) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not drop the key after NoteDestroyed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
