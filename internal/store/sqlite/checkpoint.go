package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// checkpointEvery is how often the background checkpointer copies WAL
// frames into the database file.
const checkpointEvery = 250 * time.Millisecond

// The WAL starts over from its beginning, rather than growing, once all
// of it is copied into the database file and no reader reads its frames:
// SQLite does that by itself at the start of a write transaction. A
// background checkpoint cannot get there under a steady stream of writes
// (the writer commits while it copies), so beyond walLimit the
// checkpointer copies back to back while that shrinks what is left (to
// restartLeft frames at best), then asks the writer (restartWanted) to
// copy the rest with a RESTART checkpoint between two groups, when nothing
// commits (Backend.restartWAL); its next group starts the WAL over. The
// writer waits for its own copy and at most restartWait for readers of
// older snapshots. A RESTART or TRUNCATE checkpoint run from here instead
// would block the writer (asleep in SQLite's busy handler) for the whole
// checkpoint and its wait for readers: about 12% of its time under creates.
const (
	walLimit     = 256 << 20             // bytes
	restartWait  = 20 * time.Millisecond // for readers of older snapshots
	restartLeft  = 1024                  // frames: a few milliseconds of the writer's time
	walHardLimit = 1 << 30               // bytes; see checkpointer.run
)

// checkpointer moves WAL checkpoints off the writer: the write connection
// runs with wal_autocheckpoint off, and this goroutine runs PASSIVE
// checkpoints on its own connection, which never block the writer or
// readers. Durability is unchanged: a commit is durable once its WAL
// frames are synced.
type checkpointer struct {
	wal        string        // path of the WAL file
	every      time.Duration // checkpointEvery; tests shorten it
	limit      int64         // walLimit; tests lower it
	hardLimit  int64         // walHardLimit; tests raise it
	db         *sql.DB
	stop       chan struct{}
	done       chan struct{}
	restartReq atomic.Bool // the writer is asked to finish a checkpoint (restartWanted)
}

func startCheckpointer(path string, o options) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{wal: path + "-wal", every: o.checkpointEvery, limit: o.walLimit, hardLimit: o.walHardLimit, db: db,
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			c.run()
			return
		case <-t.C:
			c.pass()
		}
	}
}

// pass checkpoints once and, beyond the limit, again at once while each
// run at least halves what is left to copy (down to restartLeft frames);
// then it asks the writer to finish (restartReq).
func (c *checkpointer) pass() {
	before := -1
	for {
		left, over := c.run()
		if !over {
			return
		}
		if left <= restartLeft || (before >= 0 && left > before/2) {
			c.restartReq.Store(true)
			return
		}
		before = left
		select {
		case <-c.stop:
			return
		default:
		}
	}
}

// run checkpoints once. It reports whether the WAL was beyond the limit
// and, if it was, the frames the checkpoint left to copy. A failed
// checkpoint reports not over: it is done next time, and the WAL keeps
// every committed frame until then.
func (c *checkpointer) run() (left int, over bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var size int64
	if fi, err := os.Stat(c.wal); err == nil {
		size = fi.Size()
	}
	// Readers that keep old snapshots for long (an export) can keep the
	// WAL from starting over; far beyond the limit, a TRUNCATE checkpoint
	// waits (within busy_timeout) for a moment without them, pausing the
	// writer.
	mode := "PASSIVE"
	if size > c.hardLimit {
		mode = "TRUNCATE"
	}
	var busy, frames, copied int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &copied); err != nil || size <= c.limit {
		return 0, false
	}
	return frames - copied, true
}

// restartWanted reports, once per request, whether the writer should
// finish a checkpoint before its next group.
func (c *checkpointer) restartWanted() bool { return c.restartReq.CompareAndSwap(true, false) }

// Scrub copies every committed change into the database file and
// truncates the WAL, so that overwritten values (a crypto-shredded data
// key's wrapped copy) are left in no file: with secure_delete on, the
// database file's free space is zeroed, and the WAL's older frames go with
// the truncation. It waits (within busy_timeout) for readers of older
// snapshots and fails if they do not finish.
func (b *Backend) Scrub(ctx context.Context) error {
	var busy, logFrames, done int
	if err := b.ckpt.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("sqlite: checkpoint: readers kept the WAL busy; try again")
	}
	return nil
}

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
