package group

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// gatedSync is a Sync that reports each call on started and returns once
// released, with the error in err.
type gatedSync struct {
	started chan struct{}
	release chan error
}

func newGatedSync() *gatedSync {
	return &gatedSync{started: make(chan struct{}, 16), release: make(chan error)}
}

func (g *gatedSync) sync() error {
	g.started <- struct{}{}
	return <-g.release
}

// wait returns when a Sync has started, failing the test after a while.
func (g *gatedSync) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no Sync started")
	}
}

// returned runs Update in a goroutine and reports its error on the channel.
func returned(q *Queue, fn Fn) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- q.Update(context.Background(), fn) }()
	return ch
}

func noop(store.Writer) error { return nil }

// TestPipelinedAnswersOnlyAfterSync: an Update whose group committed is
// not answered until a Sync that began after the commit has returned, and
// the writer commits the next group while that Sync is still running.
func TestPipelinedAnswersOnlyAfterSync(t *testing.T) {
	g := newGatedSync()
	var commits atomic.Int64
	committed := make(chan struct{}, 16)
	q := StartPipelined("test", 256, func(fns []Fn, results []Result) error {
		commits.Add(1)
		err := runAll(fns, results)
		committed <- struct{}{}
		return err
	}, g.sync)
	defer q.Close()

	first := returned(q, noop)
	select {
	case <-committed:
	case <-time.After(10 * time.Second):
		t.Fatal("the first group was not committed")
	}
	g.wait(t) // the first group's Sync is running, and blocked
	second := returned(q, noop)
	select {
	case <-committed: // the writer did not wait for the Sync
	case <-time.After(10 * time.Second):
		t.Fatal("the second group was not committed while the first one's Sync ran")
	}
	select {
	case err := <-first:
		t.Fatalf("Update answered (%v) before its Sync returned", err)
	case err := <-second:
		t.Fatalf("Update answered (%v) before any Sync after its commit", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release <- nil // the first Sync returns: it began before the second commit
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		t.Fatalf("Update answered (%v) by a Sync that began before its commit", err)
	case <-g.started: // the second group's own Sync
	case <-time.After(10 * time.Second):
		t.Fatal("no Sync for the second group")
	}
	g.release <- nil
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if c, u := q.Stats(); c != 2 || u != 2 || commits.Load() != 2 {
		t.Fatalf("Stats = %d commits, %d updates; Commit ran %d times", c, u, commits.Load())
	}
}

// TestPipelinedSyncFailureFailsQueue: when Sync fails, the Updates of the
// groups waiting for it get its error, and every later Update fails
// without its Fn running (the store's state on disk is unknown).
func TestPipelinedSyncFailureFailsQueue(t *testing.T) {
	errDisk := errors.New("fsync: input/output error")
	g := newGatedSync()
	q := StartPipelined("test", 256, runAll, g.sync)
	defer q.Close()
	failed := returned(q, noop)
	g.wait(t)
	g.release <- errDisk
	if err := <-failed; !errors.Is(err, errDisk) {
		t.Fatalf("Update of the unsynced group = %v, want %v", err, errDisk)
	}
	var ran atomic.Bool
	err := q.Update(context.Background(), func(store.Writer) error { ran.Store(true); return nil })
	if !errors.Is(err, errDisk) || ran.Load() {
		t.Fatalf("Update after the failed Sync = %v (fn ran: %v), want %v without running", err, ran.Load(), errDisk)
	}
}

// TestPipelinedOneSyncForWaitingGroups: groups committed while a Sync runs
// share the next one, and a failed Fn's own error is kept.
func TestPipelinedOneSyncForWaitingGroups(t *testing.T) {
	g := newGatedSync()
	q := StartPipelined("test", 1, runAll, g.sync) // one Fn per group
	defer q.Close()
	first := returned(q, noop)
	g.wait(t)
	errFn := errors.New("fn failed")
	var rest []<-chan error
	for i := range 5 {
		rest = append(rest, returned(q, func(store.Writer) error {
			if i == 2 {
				return errFn
			}
			return nil
		}))
	}
	// Let the five commit behind the blocked Sync.
	deadline := time.Now().Add(10 * time.Second)
	for len(q.synced) < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	g.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	g.wait(t)
	g.release <- nil
	for i, ch := range rest {
		if err := <-ch; (i == 2) != errors.Is(err, errFn) || (i != 2 && err != nil) {
			t.Fatalf("Update %d = %v", i, err)
		}
	}
	select {
	case <-g.started:
		t.Fatal("a third Sync ran for groups already synced")
	case <-time.After(20 * time.Millisecond):
	}
}
