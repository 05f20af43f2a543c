package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// TestPartition cuts one node off from the database, silently (no
// connection closes), while it leads and while its group transaction holds
// the audit head lock that orders every node's writes. The cut node fails
// closed and promptly: its Views are unavailable, its Update fails and
// keeps nothing, its leadership ends. The rest of the cluster goes on: the
// server ends the silent sessions, so another node's writes commit and it
// takes the lead. After the link heals the cut node serves again by
// itself. Bounds asserted are the backend's documented ones plus slack,
// hang checks rather than timings.
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("partition test: waits for the server's idle-session limits (~20 s); skipped under -short")
	}
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	link, linked := pgtest.NewLink(t, dsn)
	cut := open(t, linked, postgres.WithReaders(2))
	defer cut.Close()
	peer := open(t, dsn)
	defer peer.Close()
	appendLeaf := func(b *postgres.Backend, leaf string) error {
		return b.Update(ctx, func(w store.Writer) error { _, err := w.AppendAudit([]byte(leaf)); return err })
	}
	if err := appendLeaf(cut, "before"); err != nil {
		t.Fatal(err)
	}

	const interval = 200 * time.Millisecond
	term, err := cut.Elector("jobs", postgres.ElectorOptions{Interval: interval}).Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peerTerm := make(chan *postgres.Term, 1)
	go func() {
		pt, err := peer.Elector("jobs", postgres.ElectorOptions{Interval: interval}).Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		peerTerm <- pt
	}()

	// A group on the cut node is inside its transaction, holding the audit
	// head, when the link goes silent.
	inside, cutDone := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- cut.Update(ctx, func(w store.Writer) error {
			if _, err := w.AppendAudit([]byte("held")); err != nil {
				return err
			}
			close(inside)
			<-cutDone
			_, err := w.AppendAudit([]byte("held-2"))
			return err
		})
	}()
	<-inside
	link.Cut()
	cutAt := time.Now()
	close(cutDone)

	// The cut node fails closed.
	err = cut.View(ctx, func(r store.Reader) error { _, err := r.AuditSize(); return err })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("View on the cut node: %v, want store.ErrUnavailable", err)
	}
	t.Logf("View on the cut node failed after %v", time.Since(cutAt).Round(time.Millisecond))
	select {
	case <-term.Lost():
		t.Logf("the cut leader's term ended after %v", time.Since(cutAt).Round(time.Millisecond))
	case <-time.After(10 * interval):
		t.Errorf("the cut leader still leads %v after the cut", 10*interval)
	}

	// The rest of the cluster goes on.
	if err := appendLeaf(peer, "peer"); err != nil {
		t.Fatalf("Update on the other node while one is cut: %v", err)
	}
	t.Logf("the other node committed %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	select {
	case pt := <-peerTerm:
		t.Logf("the other node leads %v after the cut", time.Since(cutAt).Round(time.Millisecond))
		defer pt.Resign()
	case <-time.After(30 * time.Second):
		t.Fatal("no other node took the lead within 30s of the cut")
	}
	select {
	case err := <-held:
		if err == nil {
			t.Fatal("the cut node's group reported success")
		}
		t.Logf("the cut node's group failed after %v: %v", time.Since(cutAt).Round(time.Millisecond), err)
	case <-time.After(90 * time.Second):
		t.Fatal("the cut node's Update still hangs 90s after the cut")
	}

	// Healed, the cut node serves again by itself.
	link.Heal()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := appendLeaf(cut, "after")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the healed node cannot write 30s after the heal: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var leaves [][]byte
	err = peer.View(ctx, func(r store.Reader) error {
		n, err := r.AuditSize()
		if err == nil {
			leaves, err = r.AuditLeaves(0, n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range leaves {
		got = append(got, string(l))
	}
	if len(got) != 3 || got[0] != "before" || got[1] != "peer" || got[2] != "after" {
		t.Fatalf("audit leaves %q, want [before peer after]: the cut group must keep nothing", got)
	}
}

// TestLongGroupNotAbandoned: the silence bound is not a bound on a group's
// length. A group whose statements keep finishing for longer than the
// silence timeout (a large bundle on a loaded server) commits.
func TestLongGroupNotAbandoned(t *testing.T) {
	if testing.Short() {
		t.Skip("runs one group for 20 s; skipped under -short")
	}
	ctx := context.Background()
	b := open(t, pgtest.DSN(t))
	defer b.Close()
	start := time.Now()
	err := b.Update(ctx, func(w store.Writer) error {
		for i := 0; time.Since(start) < 20*time.Second; i++ {
			if _, err := w.AppendAudit([]byte("slow-" + time.Now().Format(time.RFC3339Nano))); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a group making progress for %v was abandoned: %v", time.Since(start).Round(time.Second), err)
	}
}
