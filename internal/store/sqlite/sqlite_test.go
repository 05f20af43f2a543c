package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
	"github.com/phivault/phivault/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestEveryUpdateWaitsForAWALSync: the write connection does not flush
// at COMMIT (the group commit flushes the WAL itself, overlapping the next
// group), so an Update must not return before an fsync of the WAL that
// followed its commit: n Updates one after another need n syncs.
func TestEveryUpdateWaitsForAWALSync(t *testing.T) {
	b, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := b.Stats()
	const n = 20
	for i := range n {
		if err := b.Update(context.Background(), func(w store.Writer) error {
			_, err := w.AppendAudit([]byte{byte(i)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if syncs, commits := st.Syncs-before.Syncs, st.Commits-before.Commits; commits != n || syncs != n {
		t.Fatalf("%d sequential Updates: %d commits, %d WAL syncs", n, commits, syncs)
	}
}

// TestGroupCommit checks that concurrent Updates share commits, and that a
// panicking fn only affects its own caller.
func TestGroupCommit(t *testing.T) {
	b, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 256
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := b.Update(context.Background(), func(w store.Writer) error {
				_, err := w.Put(store.Version{Type: "Patient", ID: fmt.Sprint(i), VID: 1, Updated: time.Now(), Body: []byte("x")}, nil)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := b.Stats()
	if st.Updates != n || st.Commits >= n/2 {
		t.Errorf("%d updates in %d commits; want %d in far fewer", st.Updates, st.Commits, n)
	}
	if st.Syncs == 0 || st.Syncs > st.Commits {
		t.Errorf("%d commits made durable by %d WAL syncs", st.Commits, st.Syncs)
	}
	t.Logf("%d concurrent updates in %d commits, %d WAL syncs", st.Updates, st.Commits, st.Syncs)

	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the fn's panic", p)
			}
		}()
		_ = b.Update(context.Background(), func(w store.Writer) error {
			if err := w.SetMeta("panic", []byte("x")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	err = b.View(context.Background(), func(r store.Reader) error {
		_, err := r.Meta("panic")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a panicking fn's write was kept: %v", err)
	}
	if err := b.Update(context.Background(), func(w store.Writer) error { return w.SetMeta("after", nil) }); err != nil {
		t.Errorf("Update after a panic: %v", err)
	}
}

// TestReopen checks data and schema survive Close and Open.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(context.Background(), func(w store.Writer) error { return w.SetMeta("k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = sqlite.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.View(context.Background(), func(r store.Reader) error {
		v, err := r.Meta("k")
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("Meta = %q", v)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}
