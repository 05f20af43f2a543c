package postgres

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// TestFenceChecksTheLock: the fence asks the database, inside the write's
// transaction, whether the term's session holds the term's lock; it does
// not trust the node's own belief. A term the node still thinks it holds
// (Lost not closed) is refused when another session, or no session, holds
// the lock, as in the moment between a lost connection and the node
// noticing it.
func TestFenceChecksTheLock(t *testing.T) {
	ctx := context.Background()
	b, err := Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	term, err := b.Elector("jobs", ElectorOptions{Logger: slog.New(slog.DiscardHandler)}).Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Resign()
	set := func(st store.Backend) error {
		return st.Update(ctx, func(w store.Writer) error { return w.SetMeta("k", []byte("v")) })
	}
	if err := set(term.Fenced()); err != nil {
		t.Fatalf("the holder's fenced write: %v", err)
	}
	for name, ghost := range map[string]*Term{
		"another session":   {b: b, key: term.key, pid: 0, lost: make(chan struct{})},
		"another lock":      {b: b, key: term.key + 1, pid: term.pid, lost: make(chan struct{})},
		"the high key half": {b: b, key: term.key ^ (1 << 40), pid: term.pid, lost: make(chan struct{})},
		"the low key half":  {b: b, key: term.key ^ 1, pid: term.pid, lost: make(chan struct{})},
	} {
		if err := set(ghost.Fenced()); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s: fenced write %v, want ErrNotLeader", name, err)
		}
	}
}
