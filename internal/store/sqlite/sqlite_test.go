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
	t.Logf("%d concurrent updates in %d commits", st.Updates, st.Commits)

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
