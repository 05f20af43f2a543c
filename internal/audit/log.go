package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// ErrUnavailable means an event could not be made durable; the request that
// caused it must fail (503) and return nothing.
var ErrUnavailable = errors.New("audit: log unavailable")

// Log appends events to the store's audit log. It is safe for concurrent
// use; concurrent appends share a durable commit (the backend's group
// commit).
type Log struct {
	st      store.Backend
	timeout time.Duration
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
// any error wraps ErrUnavailable.
func (l *Log) Record(ctx context.Context, e *Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	leaf := e.Leaf()
	if err := l.st.Update(ctx, func(tx store.Writer) error {
		_, err := tx.AppendAudit(leaf)
		return err
	}); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
