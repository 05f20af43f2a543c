package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// openKillable opens a backend whose connections carry the application
// name app and returns it with kill, which terminates those of its
// connections in the given state ("" for all).
func openKillable(t *testing.T, app string, readers int) (b *postgres.Backend, kill func(state string)) {
	t.Helper()
	b = open(t, pgtest.WithParam(pgtest.DSN(t), "application_name", app), postgres.WithReaders(readers))
	t.Cleanup(func() { b.Close() })
	return b, func(state string) {
		q := `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '` + app + `'`
		if state != "" {
			q += ` AND state = '` + state + `'`
		}
		pgtest.Exec(t, pgtest.AdminDSN(t), q)
	}
}

// TestReconnect cuts every connection of a node, as a database restart or
// failover does, while writers and readers run. The node recovers by
// itself, and the store keeps its promise: exactly the Updates that
// returned nil are kept, each once (an Update whose outcome stayed unknown
// says so with context.DeadlineExceeded), and every other failure is
// store.ErrUnavailable, which the API answers with 503.
func TestReconnect(t *testing.T) {
	ctx := context.Background()
	b, kill := openKillable(t, "phivault-reconnect-test", 2)
	write := func(name string) error {
		return b.Update(ctx, func(w store.Writer) error {
			if _, err := w.Put(store.Version{Type: "Patient", ID: name, VID: 1, Body: []byte(name)}, nil); err != nil {
				return err
			}
			_, err := w.AppendAudit([]byte(name))
			return err
		})
	}
	if err := write("before"); err != nil {
		t.Fatal(err)
	}
	kill("")
	if err := write("after"); err != nil {
		t.Fatalf("Update after the connections were cut: %v", err)
	}
	if err := b.View(ctx, func(r store.Reader) error { _, err := r.Current("Patient", "after"); return err }); err != nil {
		t.Fatalf("View after the connections were cut: %v", err)
	}

	var mu sync.Mutex
	ok, unknown := map[string]bool{"before": true, "after": true}, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("g%d-%d", g, i)
				err := write(name)
				mu.Lock()
				switch {
				case err == nil:
					ok[name] = true
				case errors.Is(err, context.DeadlineExceeded):
					unknown++
				case !errors.Is(err, store.ErrUnavailable):
					// What the API would answer with 500 instead of 503.
					t.Errorf("Update %q: %v, want nil, store.ErrUnavailable or an unknown outcome", name, err)
				}
				mu.Unlock()
				if err := b.View(ctx, func(r store.Reader) error { _, err := r.AuditSize(); return err }); err != nil && !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("View: %v, want nil or store.ErrUnavailable", err)
				}
			}
		})
	}
	for range 5 {
		time.Sleep(30 * time.Millisecond)
		kill("")
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := write("last"); err != nil {
		t.Fatalf("Update after the faults: %v", err)
	}
	ok["last"] = true
	err := b.View(ctx, func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return err
		}
		leaves, err := r.AuditLeaves(0, n)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, l := range leaves {
			if seen[string(l)] {
				t.Errorf("leaf %q kept twice", l)
			}
			seen[string(l)] = true
			if !ok[string(l)] {
				t.Errorf("leaf %q kept, but its Update failed", l)
			}
		}
		for name := range ok {
			if !seen[name] {
				t.Errorf("Update %q returned nil, but its leaf is missing", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	t.Logf("%d updates kept, %d unknown; %d commits, %d group retries", len(ok), unknown, st.Commits, st.Retries)
}

// TestViewConnectionLost: a View whose connection the server drops after
// its first read (a restart between two statements) fails with
// store.ErrUnavailable, as one whose BEGIN fails does, so that the API
// answers 503 and not 500.
func TestViewConnectionLost(t *testing.T) {
	ctx := context.Background()
	b, kill := openKillable(t, "phivault-view-lost-test", 1)
	if err := b.Update(ctx, func(w store.Writer) error {
		_, err := w.Put(store.Version{Type: "Patient", ID: "p1", VID: 1, Body: []byte("p1")}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := b.View(ctx, func(r store.Reader) error {
		if _, err := r.Current("Patient", "p1"); err != nil {
			return fmt.Errorf("first read: %w", err)
		}
		kill("")
		_, err := r.Current("Patient", "p1")
		return err
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("View whose connection was dropped: %v, want store.ErrUnavailable", err)
	}
	if err := b.View(ctx, func(r store.Reader) error { _, err := r.Current("Patient", "p1"); return err }); err != nil {
		t.Fatalf("View after the connection came back: %v", err)
	}
}

// TestCommitConnectionLost: the server drops the group's connection after
// its statements and before COMMIT (a restart at that moment), so the
// transaction is aborted and COMMIT's answer is lost. The store learns
// that it did not commit and runs the group again on a new connection:
// the Update succeeds and its writes are kept once.
func TestCommitConnectionLost(t *testing.T) {
	ctx := context.Background()
	b, kill := openKillable(t, "phivault-commit-lost-test", 1)
	runs := 0
	err := b.Update(ctx, func(w store.Writer) error {
		runs++
		if _, err := w.Put(store.Version{Type: "Patient", ID: "p1", VID: 1, Body: []byte("p1")}, nil); err != nil {
			return err
		}
		if _, err := w.AppendAudit([]byte("p1")); err != nil {
			return err
		}
		if runs == 1 { // the writer's backend, idle in this transaction, is ended before COMMIT is sent
			kill("idle in transaction")
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update whose COMMIT met a dropped connection: %v (ran %d times), want it run again and committed", err, runs)
	}
	if runs != 2 {
		t.Fatalf("the group ran %d times, want 2 (the terminated attempt, then one more)", runs)
	}
	if err := b.View(ctx, func(r store.Reader) error {
		n, err := r.AuditSize()
		if err == nil && n != 1 {
			err = fmt.Errorf("%d audit leaves, want 1", n)
		}
		if err == nil {
			_, err = r.Current("Patient", "p1")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
