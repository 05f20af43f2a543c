package sqlite

import (
	"context"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// TestViewRecoversAConnectionLeftInATransaction: a read connection handed
// back still inside a transaction (a BEGIN that took effect although its
// call failed, as when the request's context is cancelled while it runs)
// fails at most the View that finds it; the Views after it read again.
// Handed back as it was, it failed every later View on it.
func TestViewRecoversAConnectionLeftInATransaction(t *testing.T) {
	be, err := Open(t.TempDir(), WithReaders(1))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	putTokens(t, be, "p1", 1, "a")
	d := <-be.readers
	if _, err := d.exec(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	be.readers <- d
	failed := 0
	for range 5 {
		err := be.View(context.Background(), func(r store.Reader) error {
			_, err := r.Current("Patient", "p1")
			return err
		})
		if err != nil {
			failed++
		}
	}
	if failed > 1 {
		t.Fatalf("%d of 5 Views failed after a connection came back inside a transaction", failed)
	}
}
