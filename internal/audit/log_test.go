package audit

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
)

// gatedStore counts Update calls and holds each one at a gate until the
// test lets it through (or its context ends).
type gatedStore struct {
	*memstore.Store
	updates atomic.Int32
	gate    chan struct{}
	panicky atomic.Bool
	// hangFirst makes the first Update wait for its context alone, as a
	// store that hangs and then recovers.
	hangFirst bool
}

func newGatedStore() *gatedStore {
	return &gatedStore{Store: memstore.New(), gate: make(chan struct{})}
}

func (g *gatedStore) Update(ctx context.Context, fn func(store.Writer) error) error {
	if g.updates.Add(1) == 1 && g.hangFirst {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.panicky.Load() {
		panic("store bug")
	}
	return g.Store.Update(ctx, fn)
}

func (g *gatedStore) leaves(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	if err := g.View(context.Background(), func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return err
		}
		out, err = r.AuditLeaves(0, n)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond (a hang check, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *Log) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// TestLogBatchesConcurrentRecords: events that arrive while an append
// waits for the store are appended by that same single Update, every one
// of them exactly once, and each Record returns only after its own event
// is in the log.
func TestLogBatchesConcurrentRecords(t *testing.T) {
	st := newGatedStore()
	l := NewLog(st, 10*time.Second)
	ctx := context.Background()
	const n = 50
	errs := make(chan error, n+1)
	go func() { errs <- l.Record(ctx, testEvent(0)) }()
	waitFor(t, "the first append to reach the store", func() bool { return st.updates.Load() == 1 })
	for i := 1; i <= n; i++ {
		go func() { errs <- l.Record(ctx, testEvent(i)) }()
	}
	waitFor(t, "the events to queue", func() bool { return l.queued() == n+1 })
	select {
	case err := <-errs:
		t.Fatalf("a Record returned before its batch was committed: %v", err)
	default:
	}
	close(st.gate)
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := st.updates.Load(); got != 1 {
		t.Errorf("%d store Updates, want 1: the events that arrived while it waited join it", got)
	}
	got := st.leaves(t)
	var want [][]byte
	for i := range n + 1 {
		want = append(want, testEvent(i).Leaf())
	}
	cmp := func(a, b []byte) int { return bytes.Compare(a, b) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("log holds %d leaves, want the %d recorded events once each", len(got), len(want))
	}
}

// TestLogTimeout: with the store hanging, Record fails with ErrUnavailable
// by its timeout, both for the event whose append is stuck in the store and
// for one that joined it; neither is appended later. A caller's own cancellation does not cancel the append.
func TestLogTimeout(t *testing.T) {
	st := newGatedStore()
	l := NewLog(st, 200*time.Millisecond)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- l.Record(ctx, testEvent(0)) }()
	waitFor(t, "the first batch to reach the store", func() bool { return st.updates.Load() == 1 })
	if err := l.Record(ctx, testEvent(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("queued Record on a hung store: %v, want ErrUnavailable", err)
	}
	if err := <-first; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record whose batch hung in the store: %v, want ErrUnavailable", err)
	}
	waitFor(t, "the Log to go idle", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.pending
	})
	close(st.gate)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Record(canceled, testEvent(2)); err != nil {
		t.Fatalf("Record with the caller's context canceled: %v, want the append to go on", err)
	}
	if got := st.leaves(t); len(got) != 1 || !bytes.Equal(got[0], testEvent(2).Leaf()) {
		t.Fatalf("log holds %d leaves, want only the event recorded after the store recovered", len(got))
	}
}

// TestLogLateJoinerGetsItsOwnTime: an event that joins an append stuck in
// a hanging store is not failed with that append's timeout when the store
// has recovered meanwhile: it gets an Update of its own and is appended.
// The event whose append hung fails and is not in the log. The late event
// joins half a timeout after the hung append began, so it has half a
// timeout left when that append fails, and none if its deadline were the
// hung append's (with no gap, a busy machine could miss the deadline by
// scheduling alone).
func TestLogLateJoinerGetsItsOwnTime(t *testing.T) {
	st := newGatedStore()
	st.hangFirst = true
	close(st.gate)
	const timeout = 2 * time.Second
	l := NewLog(st, timeout)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- l.Record(ctx, testEvent(0)) }()
	waitFor(t, "the first append to reach the store", func() bool { return st.updates.Load() == 1 })
	time.Sleep(timeout / 2)
	if err := l.Record(ctx, testEvent(1)); err != nil {
		t.Fatalf("Record that joined a hung append after the store recovered: %v, want it appended", err)
	}
	if err := <-first; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record whose append hung: %v, want ErrUnavailable", err)
	}
	if got := st.leaves(t); len(got) != 1 || !bytes.Equal(got[0], testEvent(1).Leaf()) {
		t.Fatalf("log holds %d leaves, want only the late event", len(got))
	}
}

// TestLogStoreFailure: a failing or panicking store fails every Record of
// the batch with ErrUnavailable and keeps nothing; the Log recovers with
// the store.
func TestLogStoreFailure(t *testing.T) {
	st := newGatedStore()
	close(st.gate)
	l := NewLog(st, time.Second)
	ctx := context.Background()
	st.FailUpdates = errors.New("disk full")
	st.panicky.Store(false)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := l.Record(ctx, testEvent(i)); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Record on a failing store: %v, want ErrUnavailable", err)
			}
		})
	}
	wg.Wait()
	st.FailUpdates = nil
	st.panicky.Store(true)
	if err := l.Record(ctx, testEvent(20)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record on a panicking store: %v, want ErrUnavailable", err)
	}
	st.panicky.Store(false)
	if err := l.Record(ctx, testEvent(21)); err != nil {
		t.Fatal(err)
	}
	if got := st.leaves(t); len(got) != 1 || !bytes.Equal(got[0], testEvent(21).Leaf()) {
		t.Fatalf("log holds %d leaves, want only the event recorded once the store worked", len(got))
	}
}
