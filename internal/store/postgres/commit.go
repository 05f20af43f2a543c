package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store/group"
)

// maxRetries bounds how often a group transaction is run again after a
// serialization failure or deadlock (fns are re-runnable by contract).
const maxRetries = 5

// commit is the group.Commit of the writer goroutine: it runs the group's
// fns in one transaction that holds the cluster-wide write lock, and runs
// it again (up to maxRetries) after a serialization failure, a deadlock or
// a connection lost before COMMIT.
func (b *Backend) commit(fns []group.Fn, results []group.Result) error {
	// The callers no longer bound the group (fns run from here on). A
	// database that stops answering does: the group is abandoned after
	// silenceTimeout without a finished statement, rather than holding
	// every Update of this node.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := b.progress.watch(time.Now(), cancel)
	defer t()
	var err error
	for attempt := 0; ; attempt++ {
		clear(results)
		err = b.runGroup(ctx, fns, results)
		if err == nil || !retryable(err) || attempt == maxRetries {
			break
		}
		b.retries.Add(1)
		if errors.Is(err, errConnLost) {
			select { // let the pool reconnect
			case <-time.After(retryBackoff << attempt):
			case <-ctx.Done():
			}
		}
	}
	return err
}

// beginWrite starts a group transaction and takes the cluster-wide write
// lock, the audit_head row. Taking it first in every group orders all
// writing transactions of all nodes: audit indexes follow commit order and
// groups never wait for each other's row locks in a cycle.
// It returns the transaction's id, to learn its outcome if the connection
// is lost during COMMIT.
func (b *Backend) beginWrite(ctx context.Context) (tx pgx.Tx, xid string, err error) {
	tx, err = b.wpool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		// Nothing ran: trying again is safe.
		return nil, "", fmt.Errorf("postgres: begin: %w: %w", errConnLost, err)
	}
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text FROM audit_head FOR UPDATE`).Scan(&xid); err != nil {
		_ = tx.Rollback(ctx)
		err = fmt.Errorf("postgres: lock audit head: %w", err)
		if gerr := groupErr(tx, err); gerr != nil {
			return nil, "", gerr
		}
		return nil, "", err
	}
	return tx, xid, nil
}

// runGroup runs the group in one transaction and commits it. A nil error
// means every fn whose result is nil is durable; otherwise nothing is.
func (b *Backend) runGroup(ctx context.Context, fns []group.Fn, results []group.Result) error {
	tx, xid, err := b.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if tx != nil {
			_ = tx.Rollback(ctx) // no-op once committed
		}
	}()
	ok, err := b.runFast(ctx, tx, fns, results)
	if err != nil {
		return err
	}
	if !ok {
		// Some fn failed: start over with each fn in its own savepoint,
		// so that only the failing ones lose their writes.
		if err := tx.Rollback(ctx); err != nil {
			// pgx closes a connection whose rollback failed.
			return fmt.Errorf("postgres: rollback: %w: %w", errConnLost, err)
		}
		if tx, xid, err = b.beginWrite(ctx); err != nil {
			return err
		}
		for i, fn := range fns {
			if results[i], err = b.runOne(ctx, tx, fn); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return b.commitOutcome(xid, fmt.Errorf("postgres: commit: %w", err))
	}
	return nil
}

// groupErr returns the error that ends the whole group transaction: a
// serialization failure or deadlock, or a lost connection (before COMMIT,
// so the server rolled the transaction back); both are retried. Other
// statement errors end only the fn that met them.
func groupErr(tx pgx.Tx, err error) error {
	switch {
	case err == nil:
		return nil
	case tx.Conn().IsClosed():
		return fmt.Errorf("%w: %w", errConnLost, err)
	case retryable(err):
		return err
	}
	return nil
}

// runFast runs every fn of the group without savepoints (one round trip
// fewer per fn). It reports false, leaving results unset, as soon as one
// fn fails, panics or met a database error (which aborts the whole
// PostgreSQL transaction); the caller then runs the group again the
// careful way.
func (b *Backend) runFast(ctx context.Context, tx pgx.Tx, fns []group.Fn, results []group.Result) (bool, error) {
	for i, fn := range fns {
		w := &writer{reader: reader{ctx: ctx, tx: tx}, b: b}
		ok := func() (ok bool) {
			defer func() {
				if p := recover(); p != nil {
					ok = false
				}
			}()
			return fn(w) == nil
		}()
		w.done = true
		if err := groupErr(tx, w.err); err != nil {
			return false, err
		}
		if !ok || w.err != nil {
			return false, nil
		}
		results[i] = group.Result{}
	}
	return true, nil
}

// runOne runs fn inside a savepoint, rolling back to it if fn fails,
// panics or met a database error, so that the other fns of the group are
// unaffected. A non-nil error ends the whole group.
func (b *Backend) runOne(ctx context.Context, tx pgx.Tx, fn group.Fn) (res group.Result, err error) {
	if _, err := tx.Exec(ctx, "SAVEPOINT fn"); err != nil {
		return res, connErr(tx, fmt.Errorf("postgres: savepoint: %w", err))
	}
	w := &writer{reader: reader{ctx: ctx, tx: tx}, b: b}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res = group.Result{Panicked: true, PanicVal: p}
			}
		}()
		res.Err = fn(w)
	}()
	w.done = true
	if err := groupErr(tx, w.err); err != nil {
		return res, err
	}
	if res.Err == nil && !res.Panicked && w.err != nil {
		// fn went on after a failed statement: its writes are incomplete.
		res.Err = w.err
	}
	if res.Err != nil || res.Panicked {
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT fn"); err != nil {
			return res, connErr(tx, fmt.Errorf("postgres: rollback to savepoint: %w", err))
		}
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT fn"); err != nil {
		return res, connErr(tx, fmt.Errorf("postgres: release savepoint: %w", err))
	}
	return res, nil
}

// connErr marks err as a lost connection if tx's connection is closed.
func connErr(tx pgx.Tx, err error) error {
	if tx.Conn().IsClosed() {
		return fmt.Errorf("%w: %w", errConnLost, err)
	}
	return err
}
