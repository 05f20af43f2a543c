package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/phivault/phivault/internal/store"
)

// Request states: the caller and the writer race to move a queued request
// either to claimed (the writer will run fn) or abandoned (the caller's ctx
// ended first; fn never runs).
const (
	stateQueued int32 = iota
	stateClaimed
	stateAbandoned
)

// request is one Update call waiting for the writer.
type request struct {
	ctx   context.Context
	fn    func(store.Writer) error
	state atomic.Int32
	done  chan result // buffered; receives exactly one result once claimed
}

type result struct {
	err      error
	panicked bool
	panicVal any
}

// errGroupAborted: SQLite rolled the whole group transaction back (for
// example on an I/O error or a full disk), so no fn of the group is kept.
var errGroupAborted = errors.New("sqlite: group transaction aborted")

// writeLoop is the single writer goroutine. It owns the write connection.
// It takes every waiting request (up to maxBatch), runs them in one
// BEGIN IMMEDIATE transaction, each fn inside its own savepoint, and makes
// the group durable with one COMMIT (one WAL fsync under synchronous=FULL).
func (b *Backend) writeLoop() {
	defer close(b.writerDone)
	batch := make([]*request, 0, b.opts.maxBatch)
	for first := range b.queue {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < b.opts.maxBatch {
			select {
			case r, ok := <-b.queue:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		b.commitGroup(batch)
		clear(batch)
	}
}

// claim takes the requests whose callers still wait; a caller whose ctx
// ended is answered with its ctx error and its fn never runs.
func claim(batch []*request) []*request {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
				r.done <- result{err: fmt.Errorf("sqlite: update not run: %w", err)}
			}
			continue
		}
		if r.state.CompareAndSwap(stateQueued, stateClaimed) {
			live = append(live, r)
		}
	}
	return live
}

func (b *Backend) commitGroup(batch []*request) {
	live := claim(batch)
	if len(live) == 0 {
		return
	}
	ctx := context.Background() // fns ran: the commit is never abandoned
	results := make([]result, len(live))
	answer := func(commitErr error) {
		for i, r := range live {
			res := results[i]
			if res.err == nil && !res.panicked && commitErr != nil {
				res.err = commitErr
			}
			r.done <- res
		}
	}
	b.aborted.Store(false)
	if _, err := b.wconn.c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		answer(fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	if !b.runFast(ctx, live, results) {
		// Some fn failed: start over with each fn in its own savepoint,
		// so that only the failing ones lose their writes.
		if _, err := b.wconn.c.ExecContext(ctx, "ROLLBACK"); err != nil {
			answer(fmt.Errorf("sqlite: rollback: %w", err))
			return
		}
		b.aborted.Store(false)
		if _, err := b.wconn.c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			answer(fmt.Errorf("sqlite: begin: %w", err))
			return
		}
		for i, r := range live {
			results[i] = b.runOne(ctx, r.fn)
			if b.aborted.Load() {
				_, _ = b.wconn.c.ExecContext(ctx, "ROLLBACK")
				answer(errGroupAborted)
				return
			}
		}
	}
	if _, err := b.wconn.c.ExecContext(ctx, "COMMIT"); err != nil {
		// A failed COMMIT leaves the transaction open (e.g. SQLITE_BUSY)
		// or already rolled back; either way nothing of the group is kept.
		_, _ = b.wconn.c.ExecContext(ctx, "ROLLBACK")
		answer(fmt.Errorf("sqlite: commit: %w", err))
		return
	}
	b.commits.Add(1)
	var n int64
	for _, res := range results {
		if res.err == nil && !res.panicked {
			n++
		}
	}
	b.updates.Add(n)
	answer(nil)
}

// runFast runs every fn of the group in the open transaction without
// savepoints (a savepoint journals every page a fn touches, which costs
// more than the writes themselves). It reports false, leaving results
// unset, as soon as one fn fails or panics; the caller then rolls back and
// runs the group again the careful way. fns are re-runnable by contract.
func (b *Backend) runFast(ctx context.Context, live []*request, results []result) bool {
	for i, r := range live {
		w := &writer{reader: reader{ctx: ctx, db: b.wconn, aborted: &b.aborted}}
		ok := func() (ok bool) {
			defer func() {
				if p := recover(); p != nil {
					ok = false
				}
			}()
			return r.fn(w) == nil
		}()
		w.done = true
		if !ok || b.aborted.Load() {
			return false
		}
		results[i] = result{}
	}
	return true
}

// runOne runs fn inside a savepoint, rolling back to it if fn fails or
// panics so that the other fns of the group are unaffected.
func (b *Backend) runOne(ctx context.Context, fn func(store.Writer) error) (res result) {
	if _, err := b.wconn.c.ExecContext(ctx, "SAVEPOINT fn"); err != nil {
		b.aborted.Store(true)
		return result{err: fmt.Errorf("sqlite: savepoint: %w", err)}
	}
	w := &writer{reader: reader{ctx: ctx, db: b.wconn, aborted: &b.aborted}}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res = result{panicked: true, panicVal: p}
			}
		}()
		res.err = fn(w)
	}()
	w.done = true
	if res.err != nil || res.panicked {
		if _, err := b.wconn.c.ExecContext(ctx, "ROLLBACK TO fn"); err != nil {
			b.aborted.Store(true)
			return res
		}
	}
	if _, err := b.wconn.c.ExecContext(ctx, "RELEASE fn"); err != nil {
		b.aborted.Store(true)
	}
	return res
}
