package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// writeAll puts a resource with a token, a meta key and an audit leaf, all
// named by tag.
func writeAll(w store.Writer, tag string) error {
	if _, err := w.Put(ver("Patient", tag, 1, tag), toks("t:"+tag, "common")); err != nil {
		return err
	}
	if err := w.SetMeta("m/"+tag, []byte(tag)); err != nil {
		return err
	}
	_, err := w.AppendAudit([]byte(tag))
	return err
}

// present reports which of writeAll's effects for tag are visible.
func present(t *testing.T, r store.Reader, tag string) (res, meta, token bool) {
	t.Helper()
	_, err := r.Current("Patient", tag)
	res = err == nil
	_, err = r.Meta("m/" + tag)
	meta = err == nil
	ids, err := r.Match(store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("t:" + tag)}})
	if err != nil {
		t.Errorf("Match: %v", err)
	}
	return res, meta, len(ids) > 0
}

func testUpdateError(t *testing.T, b *closer) {
	err := b.Update(context.Background(), func(w store.Writer) error {
		if err := writeAll(w, "gone"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errTest)
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	view(t, b, func(r store.Reader) error {
		if res, meta, token := present(t, r, "gone"); res || meta || token {
			t.Errorf("failed Update kept resource %v meta %v token %v", res, meta, token)
		}
		if n, err := r.AuditSize(); err != nil || n != 0 {
			t.Errorf("failed Update kept audit leaves: size %d, %v", n, err)
		}
		return nil
	})
	// The same writes succeed afterwards, from index 0 and version 1.
	update(t, b, func(w store.Writer) error { return writeAll(w, "gone") })
}

// testUpdateAtomicConcurrent starts many Updates together, so a backend
// that group-commits puts several in one commit; the failing ones leave no
// trace and the others are all kept.
func testUpdateAtomicConcurrent(t *testing.T, b *closer) {
	const n = 48
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = b.Update(context.Background(), func(w store.Writer) error {
				if err := writeAll(w, fmt.Sprintf("u%02d", i)); err != nil {
					return err
				}
				if i%3 == 1 {
					return errTest
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case i%3 == 1 && !errors.Is(err, errTest):
			t.Errorf("Update %d: err = %v, want errTest", i, err)
		case i%3 != 1 && err != nil:
			t.Errorf("Update %d: %v", i, err)
		case i%3 != 1:
			ok++
		}
	}
	view(t, b, func(r store.Reader) error {
		for i := range n {
			res, meta, token := present(t, r, fmt.Sprintf("u%02d", i))
			want := i%3 != 1
			if res != want || meta != want || token != want {
				t.Errorf("Update %d (ok=%v): resource %v meta %v token %v", i, want, res, meta, token)
			}
		}
		if c, err := r.Count(store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("common")}}); err != nil || c != ok {
			t.Errorf("Count = %d, %v; want %d", c, err, ok)
		}
		if size, err := r.AuditSize(); err != nil || size != int64(ok) {
			t.Errorf("AuditSize = %d, %v; want %d", size, err, ok)
		}
		return nil
	})
}

func testReadYourWrites(t *testing.T, b *closer) {
	put(t, b, ver("Patient", "r", 1, "one"), toks("old")...)
	update(t, b, func(w store.Writer) error {
		v, err := w.Put(ver("Patient", "r", 2, "two"), toks("new"))
		if err != nil {
			return err
		}
		if got, err := w.Current("Patient", "r"); err != nil || sameVersion(got, v) != "" {
			t.Errorf("Current inside Update = %+v, %v; want own write", got, err)
		}
		if got, err := w.Get("Patient", "r", 2); err != nil || string(got.Body) != "two" {
			t.Errorf("Get inside Update: %q, %v", got.Body, err)
		}
		if h, err := w.History(store.HistoryQuery{Type: "Patient", ID: "r"}); err != nil || len(h) != 2 || h[0].VID != 2 {
			t.Errorf("History inside Update: %d versions, %v", len(h), err)
		}
		if ids, err := w.Match(store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("new")}}); err != nil || !eqStrings(ids, []string{"r"}) {
			t.Errorf("Match(new) inside Update = %q, %v", ids, err)
		}
		if ids, err := w.Match(store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("old")}}); err != nil || len(ids) != 0 {
			t.Errorf("Match(old) inside Update = %q, %v", ids, err)
		}
		if n, err := w.Count(store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("new")}}); err != nil || n != 1 {
			t.Errorf("Count inside Update = %d, %v", n, err)
		}
		if err := w.SetMeta("k", []byte("v")); err != nil {
			return err
		}
		if got, err := w.Meta("k"); err != nil || string(got) != "v" {
			t.Errorf("Meta inside Update = %q, %v", got, err)
		}
		if kvs, err := w.MetaPrefix("k"); err != nil || len(kvs) != 1 {
			t.Errorf("MetaPrefix inside Update = %v, %v", kvs, err)
		}
		if _, err := w.AppendAudit([]byte("leaf")); err != nil {
			return err
		}
		if n, err := w.AuditSize(); err != nil || n != 1 {
			t.Errorf("AuditSize inside Update = %d, %v", n, err)
		}
		if l, err := w.AuditLeaves(0, 1); err != nil || len(l) != 1 || string(l[0]) != "leaf" {
			t.Errorf("AuditLeaves inside Update = %q, %v", l, err)
		}
		return nil
	})
}

// testViewSnapshot commits while a View is open: the View keeps seeing the
// state from before.
func testViewSnapshot(t *testing.T, b *closer) {
	put(t, b, ver("Patient", "s", 1, "before"), toks("before")...)
	view(t, b, func(r store.Reader) error {
		if v, err := r.Current("Patient", "s"); err != nil || v.VID != 1 {
			t.Errorf("Current = %d, %v", v.VID, err)
			return nil
		}
		update(t, b, func(w store.Writer) error {
			if _, err := w.Put(ver("Patient", "s", 2, "after"), toks("after")); err != nil {
				return err
			}
			if _, err := w.Put(ver("Patient", "s2", 1, "new"), nil); err != nil {
				return err
			}
			if err := w.SetMeta("during", []byte("x")); err != nil {
				return err
			}
			_, err := w.AppendAudit([]byte("during"))
			return err
		})
		if v, err := r.Current("Patient", "s"); err != nil || v.VID != 1 || string(v.Body) != "before" {
			t.Errorf("Current after concurrent commit = %d %q, %v; want version 1", v.VID, v.Body, err)
		}
		if _, err := r.Current("Patient", "s2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("resource created during the View is visible: %v", err)
		}
		if _, err := r.Meta("during"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("meta written during the View is visible: %v", err)
		}
		if n, err := r.AuditSize(); err != nil || n != 0 {
			t.Errorf("AuditSize = %d, %v; want 0", n, err)
		}
		if ids, err := r.Match(store.MatchQuery{Type: "Patient", All: [][]store.Token{toks("before")}}); err != nil || !eqStrings(ids, []string{"s"}) {
			t.Errorf("Match(before) = %q, %v", ids, err)
		}
		if h, err := r.History(store.HistoryQuery{}); err != nil || len(h) != 1 {
			t.Errorf("History = %d versions, %v; want 1", len(h), err)
		}
		return nil
	})
	if v := current(t, b, "Patient", "s"); v.VID != 2 {
		t.Errorf("a new View sees version %d, want 2", v.VID)
	}
}

// testContextCanceled: an Update whose ctx has ended before fn runs is
// dropped without running fn.
func testContextCanceled(t *testing.T, b *closer) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := b.Update(ctx, func(w store.Writer) error {
		ran = true
		return writeAll(w, "never")
	})
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Update with canceled ctx: err = %v, fn ran = %v; want context.Canceled, not run", err, ran)
	}
	if err := b.View(ctx, func(store.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("View with canceled ctx: err = %v, want context.Canceled", err)
	}
	view(t, b, func(r store.Reader) error {
		if res, meta, token := present(t, r, "never"); res || meta || token {
			t.Errorf("canceled Update left resource %v meta %v token %v", res, meta, token)
		}
		return nil
	})
}

func testClosed(t *testing.T, b *closer) {
	put(t, b, ver("Patient", "c", 1, "x"))
	if err := b.close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ran := false
	if err := b.Update(context.Background(), func(store.Writer) error { ran = true; return nil }); !errors.Is(err, store.ErrClosed) || ran {
		t.Errorf("Update after Close: err = %v, fn ran %v; want ErrClosed", err, ran)
	}
	if err := b.View(context.Background(), func(store.Reader) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close: err = %v, want ErrClosed", err)
	}
}
