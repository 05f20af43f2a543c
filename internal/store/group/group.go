// Package group is the group commit that the storage backends share:
// Update calls wait in a queue, and one writer goroutine takes every call
// waiting (up to a bound) and has the backend commit them together, so
// that one durable commit (one fsync) serves them all.
package group

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/phivault/phivault/internal/store"
)

// Fn is the work of one Update call.
type Fn = func(store.Writer) error

// Result is what one Fn came to inside its group.
type Result struct {
	Err      error
	Panicked bool
	PanicVal any // the value it panicked with, re-raised in its caller
}

// ok reports whether the Fn returned nil.
func (r Result) ok() bool { return r.Err == nil && !r.Panicked }

// Commit runs fns in one transaction and makes it durable. It sets
// results[i] to what fns[i] came to; a Fn whose result is not ok must
// leave no write behind. It returns nil only once every Fn whose result is
// ok is durable; any other error means nothing of the group was kept.
// Fns are re-runnable by contract: Commit may run one more than once (a
// retry, a savepoint replay), and it never runs one after returning.
type Commit func(fns []Fn, results []Result) error

// Request states: the caller and the writer race to move a queued request
// either to claimed (the writer will run its Fn) or abandoned (the
// caller's ctx ended first; its Fn never runs).
const (
	stateQueued int32 = iota
	stateClaimed
	stateAbandoned
)

// request is one Update call waiting for the writer.
type request struct {
	ctx   context.Context
	fn    Fn
	state atomic.Int32
	done  chan Result // buffered; receives exactly one result once claimed
}

// Queue is one backend's group commit. It is safe for concurrent use.
type Queue struct {
	name     string // the backend's name, for errors
	maxBatch int
	commit   Commit

	mu     sync.RWMutex // held for reading while sending, so Close never closes queue under a sender
	closed bool
	queue  chan *request
	done   chan struct{} // closed when the writer has stopped

	commits atomic.Int64 // group commits that succeeded
	updates atomic.Int64 // Fns they made durable
}

// Start returns a Queue whose writer goroutine commits up to maxBatch
// Update calls at a time with commit. name prefixes its errors
// ("sqlite: update not run: ...").
func Start(name string, maxBatch int, commit Commit) *Queue {
	maxBatch = max(maxBatch, 1)
	q := &Queue{name: name, maxBatch: maxBatch, commit: commit,
		queue: make(chan *request, maxBatch), done: make(chan struct{})}
	go q.writeLoop()
	return q
}

// Update runs fn in the next group and returns once that group is durable
// (nil) or has failed; a panic in fn is raised again here. If ctx ends
// before fn started, fn never runs and Update returns ctx's error; once fn
// has started, Update waits for the group's outcome (bounded by one group
// commit), so its answer is always definite. After Close it returns
// store.ErrClosed.
func (q *Queue) Update(ctx context.Context, fn Fn) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: update not run: %w", q.name, err)
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan Result, 1)}
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return store.ErrClosed
	}
	select {
	case q.queue <- r:
		q.mu.RUnlock()
	case <-ctx.Done():
		q.mu.RUnlock()
		return fmt.Errorf("%s: update not run: %w", q.name, ctx.Err())
	}
	var res Result
	select {
	case res = <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return fmt.Errorf("%s: update not run: %w", q.name, ctx.Err())
		}
		res = <-r.done
	}
	if res.Panicked {
		panic(res.PanicVal)
	}
	return res.Err
}

// Close refuses new Update calls, lets the queued ones commit and returns
// when the writer has stopped. It may be called more than once.
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.queue)
	}
	q.mu.Unlock()
	<-q.done
}

// Stats reports how many group commits succeeded and how many Update
// calls they made durable.
func (q *Queue) Stats() (commits, updates int64) {
	return q.commits.Load(), q.updates.Load()
}

// writeLoop takes every waiting request, up to maxBatch, and commits them
// as one group.
func (q *Queue) writeLoop() {
	defer close(q.done)
	batch := make([]*request, 0, q.maxBatch)
	for first := range q.queue {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < q.maxBatch {
			select {
			case r, ok := <-q.queue:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		q.commitGroup(batch)
		clear(batch)
	}
}

// commitGroup claims the requests whose callers still wait (a caller whose
// ctx ended is answered with its error and its Fn never runs), commits
// them and answers each: its own result, or the group's error if its Fn
// succeeded but the group was not kept.
func (q *Queue) commitGroup(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
				r.done <- Result{Err: fmt.Errorf("%s: update not run: %w", q.name, err)}
			}
			continue
		}
		if r.state.CompareAndSwap(stateQueued, stateClaimed) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	fns := make([]Fn, len(live))
	for i, r := range live {
		fns[i] = r.fn
	}
	results := make([]Result, len(live))
	err := q.commit(fns, results)
	if err == nil {
		var n int64
		for _, res := range results {
			if res.ok() {
				n++
			}
		}
		q.commits.Add(1)
		q.updates.Add(n)
	}
	for i, r := range live {
		res := results[i]
		if res.ok() && err != nil {
			res.Err = err
		}
		r.done <- res
	}
}
