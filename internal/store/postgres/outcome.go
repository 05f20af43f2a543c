package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/phivault/phivault/internal/store"
)

// errConnLost marks a group transaction that failed because its connection
// was lost before it committed (before COMMIT was sent, or with COMMIT's
// answer lost and the server reporting the transaction aborted): the
// server rolled it back, so the group may run again on a new connection. Once the retries are spent the caller
// sees store.ErrUnavailable.
var errConnLost = fmt.Errorf("postgres: connection lost: %w", store.ErrUnavailable)

// retryBackoff is the first pause before running a group again after a
// lost connection; it doubles with each attempt (maxRetries bounds them).
const retryBackoff = 50 * time.Millisecond

// outcomeTimeout bounds how long commitOutcome tries to learn whether a
// COMMIT whose answer was lost took effect.
const outcomeTimeout = 30 * time.Second

// retryable reports an error after which the group transaction is known
// not to have committed and may simply run again: a serialization failure,
// a deadlock, or a connection lost before COMMIT.
func retryable(err error) bool {
	if errors.Is(err, errConnLost) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// commitOutcome decides what a failed COMMIT means. An ERROR the server
// answered means the transaction rolled back. A lost answer (connection
// cut, server restarted) leaves the outcome open: it asks the server, on a
// new connection, for the transaction's status (pg_xact_status) until it
// learns it or outcomeTimeout passes: committed is success, aborted is a
// lost connection (errConnLost, so the group runs again). Only an unknown
// outcome is reported as such, and as the store contract asks it wraps
// context.DeadlineExceeded.
func (b *Backend) commitOutcome(xid string, commitErr error) error {
	// An ERROR leaves the session alive and the transaction rolled back; a
	// FATAL (the backend was terminated) may have come after the commit.
	if pe := (*pgconn.PgError)(nil); errors.As(commitErr, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC" {
		return commitErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), outcomeTimeout)
	defer cancel()
	for wait := retryBackoff; ; wait = min(2*wait, time.Second) {
		var status *string
		err := b.wpool.QueryRow(ctx, `SELECT pg_xact_status($1::xid8)`, xid).Scan(&status)
		switch {
		case err == nil && status != nil && *status == "committed":
			return nil
		case err == nil && status != nil && *status == "aborted":
			// The connection was lost before the transaction committed
			// (a restart, a terminated backend): nothing was written, and
			// the group may run again on a new connection.
			return fmt.Errorf("%w: %w", errConnLost, commitErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: commit outcome unknown: %w", errors.Join(commitErr, ctx.Err()))
		case <-time.After(wait):
		}
	}
}
