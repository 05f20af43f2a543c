package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/phivault/phivault/internal/store/group"
)

// errGroupAborted: SQLite rolled the whole group transaction back (for
// example on an I/O error or a full disk), so no fn of the group is kept.
var errGroupAborted = errors.New("sqlite: group transaction aborted")

// commit is the group.Commit of the single writer, which owns the write
// connection: it runs the group's fns in one BEGIN IMMEDIATE transaction
// and makes them durable with one COMMIT (one WAL fsync under
// synchronous=FULL).
func (b *Backend) commit(fns []group.Fn, results []group.Result) error {
	ctx := context.Background() // fns ran: the commit is never abandoned
	b.aborted.Store(false)
	b.written, b.indexed = b.written[:0], false
	if b.ckpt.restartWanted() {
		b.restartWAL(ctx)
	}
	if _, err := b.wconn.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if !b.runFast(ctx, fns, results) {
		// Some fn failed: start over with each fn in its own savepoint,
		// so that only the failing ones lose their writes.
		if _, err := b.wconn.c.ExecContext(ctx, "ROLLBACK"); err != nil {
			return fmt.Errorf("sqlite: rollback: %w", err)
		}
		b.aborted.Store(false)
		if _, err := b.wconn.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("sqlite: begin: %w", err)
		}
		for i, fn := range fns {
			results[i] = b.runOne(ctx, fn)
			if b.aborted.Load() {
				_, _ = b.wconn.c.ExecContext(ctx, "ROLLBACK")
				return errGroupAborted
			}
		}
	}
	if len(b.written) > 0 {
		// Reads stop using the version cache until the versions put are
		// dropped from it, committed or not (versionCache).
		b.cache.committing()
		defer b.cache.ended(b.written)
	}
	if b.indexed && b.postings != nil {
		// Likewise the sets of postings in memory.
		b.postings.committing()
		defer b.postings.ended()
	}
	if _, err := b.wconn.exec(ctx, "COMMIT"); err != nil {
		// A failed COMMIT leaves the transaction open (e.g. SQLITE_BUSY)
		// or already rolled back; either way nothing of the group is kept.
		_, _ = b.wconn.c.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// runFast runs every fn of the group in the open transaction without
// savepoints (a savepoint journals every page a fn touches, which costs
// more than the writes themselves). It reports false, leaving results
// unset, as soon as one fn fails or panics; the caller then rolls back and
// runs the group again the careful way. fns are re-runnable by contract.
func (b *Backend) runFast(ctx context.Context, fns []group.Fn, results []group.Result) bool {
	for i, fn := range fns {
		w := &writer{reader: reader{ctx: ctx, db: b.wconn, aborted: &b.aborted, sizes: b.sizes}, written: &b.written, indexed: &b.indexed}
		ok := func() (ok bool) {
			defer func() {
				if p := recover(); p != nil {
					ok = false
				}
			}()
			return fn(w) == nil
		}()
		w.done = true
		if !ok || b.aborted.Load() {
			return false
		}
		results[i] = group.Result{}
	}
	return true
}

// runOne runs fn inside a savepoint, rolling back to it if fn fails or
// panics so that the other fns of the group are unaffected.
func (b *Backend) runOne(ctx context.Context, fn group.Fn) (res group.Result) {
	if _, err := b.wconn.c.ExecContext(ctx, "SAVEPOINT fn"); err != nil {
		b.aborted.Store(true)
		return group.Result{Err: fmt.Errorf("sqlite: savepoint: %w", err)}
	}
	w := &writer{reader: reader{ctx: ctx, db: b.wconn, aborted: &b.aborted, sizes: b.sizes}, written: &b.written, indexed: &b.indexed}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res = group.Result{Panicked: true, PanicVal: p}
			}
		}()
		res.Err = fn(w)
	}()
	w.done = true
	if res.Err != nil || res.Panicked {
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

// restartWAL copies the WAL's last frames while nothing commits and waits
// briefly (restartWait) for readers of older snapshots (readers that start
// now read the database file), so that the next group starts the WAL over
// (checkpoint.go). If a reader holds an old snapshot longer, or anything
// fails, the WAL stays as it is and the checkpointer asks again later.
func (b *Backend) restartWAL(ctx context.Context) {
	if _, err := b.wconn.c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout(%d)", restartWait.Milliseconds())); err != nil {
		return
	}
	_, _ = b.wconn.c.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)")
	_, _ = b.wconn.c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout(%d)", busyTimeout.Milliseconds()))
}
