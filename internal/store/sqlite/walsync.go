package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
)

// walFile flushes the write-ahead log for the pipelined group commit.
//
// The write connection runs with synchronous=NORMAL: a COMMIT appends the
// group's frames to the WAL with write(2) and returns without fsync, so
// the writer can go on with the next group (SQLite still syncs the WAL
// before every checkpoint and the database file after it). sync then
// fsyncs the WAL file, which makes every frame written before it durable;
// the group commit answers a group's callers only after a sync that began
// after its COMMIT (group.StartPipelined).
//
// A committed group is visible to readers before it is durable, but no
// caller is answered with it before then: every Update is answered only
// after its own sync, and the WAL is one file written in commit order, so
// that sync covers every group committed before it. An audited read, whose
// answer waits for its audit leaf's commit, therefore never returns a
// write that a power loss could still take back. A kill -9 loses nothing
// either way: the frames are in the operating system's cache.
//
// Only the writer goroutine's group commit calls sync, from one goroutine.
type walFile struct {
	path  string // the database's path + "-wal"
	f     *os.File
	syncs atomic.Int64 // successful syncs
}

// sync makes every transaction committed so far durable.
func (w *walFile) sync() error {
	if w.f != nil {
		// SQLite deletes the WAL only when the last connection closes, but
		// check: a new file would need opening, and its directory entry
		// syncing, before it can be trusted.
		if fi, err := os.Stat(w.path); err == nil {
			if cur, err := w.f.Stat(); err == nil && os.SameFile(fi, cur) {
				if err := w.f.Sync(); err != nil {
					return fmt.Errorf("sqlite: sync WAL: %w", err)
				}
				w.syncs.Add(1)
				return nil
			}
		}
		w.f.Close()
		w.f = nil
	}
	f, err := os.OpenFile(w.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sqlite: open WAL to sync it: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sqlite: sync WAL: %w", err)
	}
	// The WAL's directory entry: SQLite syncs it at the first sync of a
	// new WAL, which synchronous=NORMAL leaves to the first checkpoint.
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		f.Close()
		return err
	}
	w.f = f
	w.syncs.Add(1)
	return nil
}

// close releases the file.
func (w *walFile) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("sqlite: close WAL: %w", err)
	}
	return nil
}
