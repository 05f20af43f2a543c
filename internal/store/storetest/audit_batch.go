package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// testAuditBatch: one Update appending many leaves (as the audit log's
// batches do) gets consecutive indexes and reads its own appends; an
// Update that appends and then fails gives its indexes back to the next
// one, even when the next one starts in the same fn-run as a read of the
// size.
func testAuditBatch(t *testing.T, b *closer) {
	const n = 1000
	name := func(i int) string { return fmt.Sprintf("leaf-%04d", i) }
	update(t, b, func(w store.Writer) error {
		for i := range n {
			idx, err := w.AppendAudit([]byte(name(i)))
			if err != nil {
				return err
			}
			if idx != int64(i) {
				return fmt.Errorf("append #%d got index %d", i, idx)
			}
			if i == n/2 {
				if size, err := w.AuditSize(); err != nil || size != int64(i+1) {
					return fmt.Errorf("AuditSize inside the batch = %d, %v; want %d", size, err, i+1)
				}
			}
		}
		last, err := w.AuditLeaves(n-1, n)
		if err != nil || len(last) != 1 || string(last[0]) != name(n-1) {
			return fmt.Errorf("reading its own last append: %q, %v", last, err)
		}
		return nil
	})
	if err := b.Update(context.Background(), func(w store.Writer) error {
		for i := range 10 {
			if _, err := w.AppendAudit([]byte("rolled-back")); err != nil {
				return fmt.Errorf("append #%d: %w", i, err)
			}
		}
		return errTest
	}); !errors.Is(err, errTest) {
		t.Fatalf("failing Update: %v, want errTest", err)
	}
	update(t, b, func(w store.Writer) error {
		if size, err := w.AuditSize(); err != nil || size != n {
			return fmt.Errorf("AuditSize after a failed batch = %d, %v; want %d", size, err, n)
		}
		for i := n; i < n+3; i++ {
			idx, err := w.AppendAudit([]byte(name(i)))
			if err != nil {
				return err
			}
			if idx != int64(i) {
				return fmt.Errorf("append after a failed batch got index %d, want %d", idx, i)
			}
		}
		return nil
	})
	view(t, b, func(r store.Reader) error {
		leaves, err := r.AuditLeaves(0, n+3)
		if err != nil {
			return err
		}
		for i, l := range leaves {
			if string(l) != name(i) {
				t.Errorf("leaf %d = %q, want %q", i, l, name(i))
			}
		}
		if size, err := r.AuditSize(); err != nil || size != n+3 {
			t.Errorf("AuditSize = %d, %v; want %d", size, err, n+3)
		}
		return nil
	})
}
