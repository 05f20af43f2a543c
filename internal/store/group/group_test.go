package group

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// runAll is a Commit that runs each fn once, as a backend's fast path
// does, recovering panics.
func runAll(fns []Fn, results []Result) error {
	for i, fn := range fns {
		func() {
			defer func() {
				if p := recover(); p != nil {
					results[i] = Result{Panicked: true, PanicVal: p}
				}
			}()
			results[i].Err = fn(nil)
		}()
	}
	return nil
}

// TestWaitingCallsShareACommit: the calls queued while a group commits
// are committed together in the next one, and Stats counts both.
func TestWaitingCallsShareACommit(t *testing.T) {
	entered, release := make(chan int, 8), make(chan struct{})
	q := Start("test", 256, blocking(entered, release))
	defer q.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := q.Update(ctx, func(store.Writer) error { return nil }); err != nil {
			t.Error(err)
		}
	})
	if n := <-entered; n != 1 { // the first group is committing and blocked
		t.Fatalf("first group of %d", n)
	}
	var ran atomic.Int32
	for range 20 {
		wg.Go(func() {
			if err := q.Update(ctx, func(store.Writer) error { ran.Add(1); return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	for len(q.queue) < 20 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := <-entered; ran.Load() != 20 || n != 20 || len(entered) != 0 {
		t.Fatalf("ran %d, the second group had %d and %d more groups followed; want all 20 in one", ran.Load(), n, len(entered))
	}
	if c, u := q.Stats(); c != 2 || u != 21 {
		t.Fatalf("stats: %d commits, %d updates; want 2, 21", c, u)
	}
}

// TestResults: each caller gets its own fn's error or panic; a group
// that is not kept fails the calls whose fns succeeded, with its error,
// and is not counted as a commit.
func TestResults(t *testing.T) {
	errFn, errGroup := errors.New("fn failed"), errors.New("group lost")
	var fail atomic.Bool
	q := Start("test", 256, func(fns []Fn, results []Result) error {
		runAll(fns, results)
		if fail.Load() {
			return errGroup
		}
		return nil
	})
	defer q.Close()
	ctx := context.Background()
	if err := q.Update(ctx, func(store.Writer) error { return errFn }); !errors.Is(err, errFn) {
		t.Fatalf("fn's error: got %v", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("panic re-raised as %v, want boom", p)
			}
		}()
		_ = q.Update(ctx, func(store.Writer) error { panic("boom") })
		t.Fatal("the fn's panic was not re-raised")
	}()
	fail.Store(true)
	if err := q.Update(ctx, func(store.Writer) error { return nil }); !errors.Is(err, errGroup) {
		t.Fatalf("a group not kept: got %v, want the group's error", err)
	}
	if err := q.Update(ctx, func(store.Writer) error { return errFn }); !errors.Is(err, errFn) {
		t.Fatalf("a failed fn in a group not kept: got %v, want its own error", err)
	}
	if c, u := q.Stats(); c != 2 || u != 0 {
		t.Fatalf("stats: %d commits, %d updates; want 2 groups kept with no fn succeeding", c, u)
	}
}

// blocking returns a Commit that sends the size of each group on entered
// and waits for release before committing it.
func blocking(entered chan<- int, release <-chan struct{}) Commit {
	return func(fns []Fn, results []Result) error {
		entered <- len(fns)
		<-release
		return runAll(fns, results)
	}
}

// TestEndedContext: a call whose ctx ends before its fn starts returns
// the ctx's error and its fn never runs, and a call given an ended ctx is
// refused at once.
func TestEndedContext(t *testing.T) {
	entered, release := make(chan int, 8), make(chan struct{})
	q := Start("test", 256, blocking(entered, release))
	defer q.Close()
	done := make(chan error, 1)
	go func() { done <- q.Update(context.Background(), func(store.Writer) error { return nil }) }()
	<-entered // the first group is blocked in commit
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var ran atomic.Bool
	err := q.Update(ctx, func(store.Writer) error { ran.Store(true); return nil })
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	q.Close()
	if ran.Load() {
		t.Fatal("the fn of a call whose ctx ended ran")
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	q2 := Start("test", 1, runAll)
	defer q2.Close()
	if err := q2.Update(cancelled, func(store.Writer) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("an ended ctx: got %v", err)
	}
}

// TestClose: calls queued before Close still commit; calls after it get
// store.ErrClosed; Close may be called again.
func TestClose(t *testing.T) {
	entered, release := make(chan int, 8), make(chan struct{})
	q := Start("test", 256, blocking(entered, release))
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 5 {
		wg.Go(func() {
			if err := q.Update(context.Background(), func(store.Writer) error { ok.Add(1); return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	first := <-entered
	for first+len(q.queue) < 5 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	for {
		q.mu.RLock()
		c := q.closed
		q.mu.RUnlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-closed
	wg.Wait()
	if ok.Load() != 5 {
		t.Fatalf("%d of 5 calls queued before Close committed", ok.Load())
	}
	if err := q.Update(context.Background(), func(store.Writer) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("after Close: got %v", err)
	}
	q.Close()
}
