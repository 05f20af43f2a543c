package audit

import (
	"context"
	"errors"
	"fmt"
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
// Concurrent Record calls share work: while one batch of events is being
// made durable, the events that arrive wait in a queue, and the next batch
// appends them all in a single store.Update (one transaction, whose commit
// the backend's group commit may share with other writes). An idle Log
// runs no goroutine.
type Log struct {
	st      store.Backend
	timeout time.Duration

	mu       sync.Mutex
	queue    []*appendReq // waiting for the next batch
	flushing bool         // a flush goroutine runs and will take the queue
}

// States of an appendReq: the flush goroutine and the waiting caller race
// to move it from queued to claimed (it goes into a batch) or abandoned
// (the caller's time ran out first; it is never appended).
const (
	reqQueued int32 = iota
	reqClaimed
	reqAbandoned
)

// appendReq is one Record call waiting for its batch.
type appendReq struct {
	ctx   context.Context // detached, with the Log's timeout
	leaf  []byte
	state atomic.Int32
	done  chan error // buffered; receives one result once claimed
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
// if the store hangs: an event whose batch was still being committed then
// may or may not be in the log, and the caller must fail as if it were not.
func (l *Log) Record(ctx context.Context, e *Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	r := &appendReq{ctx: ctx, leaf: e.Leaf(), done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, r)
	start := !l.flushing
	l.flushing = true
	l.mu.Unlock()
	if start {
		go l.flush()
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

// flush appends batches until the queue is empty, then ends.
func (l *Log) flush() {
	for {
		l.mu.Lock()
		n := min(len(l.queue), maxBatch)
		if n == 0 {
			l.queue = nil
			l.flushing = false
			l.mu.Unlock()
			return
		}
		batch := l.queue[:n:n]
		l.queue = l.queue[n:]
		l.mu.Unlock()
		l.commit(batch)
	}
}

// commit appends the leaves of the batch's still-waiting requests in one
// store.Update and answers each of them with its outcome.
func (l *Log) commit(batch []*appendReq) {
	live := batch[:0]
	var deadline time.Time
	for _, r := range batch {
		if r.ctx.Err() != nil {
			continue // its caller is abandoning it
		}
		if r.state.CompareAndSwap(reqQueued, reqClaimed) {
			live = append(live, r)
			if d, _ := r.ctx.Deadline(); d.After(deadline) {
				deadline = d
			}
		}
	}
	if len(live) == 0 {
		return
	}
	// The batch may wait for the commit as long as its most patient
	// member; each caller stops waiting at its own deadline.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := l.update(ctx, live)
	for _, r := range live {
		r.done <- err
	}
}

// update runs the batch's store.Update; a panic in the store becomes an
// error, so the waiting requests fail instead of the process.
func (l *Log) update(ctx context.Context, live []*appendReq) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("audit: store panicked: %v", p)
		}
	}()
	return l.st.Update(ctx, func(tx store.Writer) error {
		for _, r := range live {
			if _, err := tx.AppendAudit(r.leaf); err != nil {
				return err
			}
		}
		return nil
	})
}
