package audit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// ErrUnavailable means an event could not be made durable; the request that
// caused it must fail (503) and return nothing.
var ErrUnavailable = errors.New("audit: log unavailable")

// maxBatch bounds how many events one store.Update appends.
const maxBatch = 1024

// Log appends events to the store's audit log. It is safe for concurrent
// use.
//
// Concurrent Record calls share work. An event that arrives when no
// append is waiting for the store starts one: a store.Update whose fn, when
// the backend runs it, takes every event queued by then and appends them
// all in that one transaction. Events that arrive while it waits join it;
// events that arrive once it has started start the next one, which the
// backend can run right after (or in the same group commit). So the
// batches are as large as the store's own pace allows, and the store never
// waits for the Log. An idle Log runs no goroutine.
type Log struct {
	st      store.Backend
	timeout time.Duration

	mu      sync.Mutex
	queue   []*appendReq // waiting for an Update's fn to take them
	pending bool         // an Update was submitted and its fn has not taken the queue yet
}

// States of an appendReq: a running fn and the waiting caller race to move
// it from queued to claimed (it is appended) or abandoned (the caller's
// time ran out first; it is never appended).
const (
	reqQueued int32 = iota
	reqClaimed
	reqAbandoned
)

// appendReq is one Record call waiting for its event to be durable.
type appendReq struct {
	ctx   context.Context // detached, with the Log's timeout
	leaf  []byte
	state atomic.Int32
	done  chan error // buffered; receives one result once taken
}

// NewLog returns a Log over st. timeout bounds each append; the append runs
// in a context detached from the caller's so that a client hanging up
// cannot cancel it.
func NewLog(st store.Backend, timeout time.Duration) *Log {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Log{st: st, timeout: timeout}
}

// Record durably appends e. It returns nil only once the event is durable;
// any error wraps ErrUnavailable. It returns within the Log's timeout even
// if the store hangs: an event whose transaction was still being committed
// then may or may not be in the log, and the caller must fail as if it
// were not.
func (l *Log) Record(ctx context.Context, e *Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	r := &appendReq{ctx: ctx, leaf: e.Leaf(), done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, r)
	submit := !l.pending
	l.pending = true
	l.mu.Unlock()
	if submit {
		go l.submit()
	}
	select {
	case err := <-r.done:
		return unavailable(err)
	case <-ctx.Done():
	}
	if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
		return fmt.Errorf("%w: not appended: %v", ErrUnavailable, ctx.Err())
	}
	select {
	case err := <-r.done:
		return unavailable(err)
	default:
		return fmt.Errorf("%w: append not confirmed in time: %v", ErrUnavailable, ctx.Err())
	}
}

func unavailable(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// errNotRun: the store returned from Update without running fn.
var errNotRun = errors.New("audit: the store did not run the append")

// submit runs one store.Update whose fn takes the queue when it first runs
// (a re-run appends the same events), then answers the events it took. If
// the store gives up before running fn (its context ended, it is closed),
// the events waiting then fail with its error, except when it gave up
// because this Update's own time ran out: see retryLive.
func (l *Log) submit() {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	var (
		batch  []*appendReq
		once   sync.Once // the first of fn and the give-up path below takes the queue
		notRun bool
	)
	err := l.update(ctx, func(tx store.Writer) error {
		once.Do(func() {
			if l.alone() {
				// A group of one gains nothing from group commit. Yield
				// once: on an idle process this returns at once; on a
				// busy one the requests ahead in the run queue, most a
				// moment away from their own event, run first and join
				// this group, so one fsync serves several reads instead
				// of each paying for its own (docs/benchmarks.md, "FHIR
				// reads with audit on / off").
				runtime.Gosched()
			}
			batch = l.take()
		})
		for _, r := range batch {
			if _, err := tx.AppendAudit(r.leaf); err != nil {
				return err
			}
		}
		return nil
	})
	once.Do(func() { notRun = true })
	if notRun {
		if ctx.Err() != nil {
			// This Update's own time ran out before the store ran it.
			// Events that joined it late still have time of their own:
			// they get a fresh Update rather than this one's error.
			end, _ := ctx.Deadline()
			l.retryLive(end)
			return
		}
		if err == nil {
			err = errNotRun
		}
		batch = l.take()
	}
	for _, r := range batch {
		r.done <- err
	}
}

// retryLive starts a new Update for the queued events whose own time ends
// after end, the deadline of the Update that gave up; the others had all
// of that Update's time and are dropped (their callers fail). A new Update
// has the whole timeout, so an event sees at most one more: a hanging
// store cannot make this loop.
func (l *Log) retryLive(end time.Time) {
	l.mu.Lock()
	live := l.queue[:0]
	for _, r := range l.queue {
		if d, _ := r.ctx.Deadline(); d.After(end) && r.ctx.Err() == nil && r.state.Load() == reqQueued {
			live = append(live, r)
		}
	}
	clear(l.queue[len(live):])
	l.queue = live
	l.pending = len(live) > 0
	l.mu.Unlock()
	if len(live) > 0 {
		go l.submit()
	}
}

// alone reports whether exactly one event waits.
func (l *Log) alone() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) == 1
}

// take claims up to maxBatch queued events whose callers still wait. A
// longer queue keeps its tail and gets an Update of its own.
func (l *Log) take() []*appendReq {
	l.mu.Lock()
	q := l.queue
	more := len(q) > maxBatch
	if more {
		q, l.queue = q[:maxBatch:maxBatch], q[maxBatch:]
	} else {
		l.queue = nil
	}
	l.pending = more
	l.mu.Unlock()
	if more {
		go l.submit()
	}
	live := q[:0]
	for _, r := range q {
		if r.ctx.Err() == nil && r.state.CompareAndSwap(reqQueued, reqClaimed) {
			live = append(live, r)
		}
	}
	return live
}

// update runs st.Update; a panic in the store becomes an error, so the
// waiting events fail instead of the process.
func (l *Log) update(ctx context.Context, fn func(store.Writer) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("audit: store panicked: %v", p)
		}
	}()
	return l.st.Update(ctx, fn)
}
