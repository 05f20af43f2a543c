package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// checkpointEvery is how often the background checkpointer copies WAL
// frames into the database file.
const checkpointEvery = 250 * time.Millisecond

// walLimit is the WAL size beyond which the checkpointer also truncates
// the WAL. PASSIVE checkpoints never block anyone, but under a steady
// stream of readers and writers the WAL can never restart and would grow
// without bound; a TRUNCATE checkpoint waits (within busy_timeout) for a
// moment without readers of old snapshots, pausing writers briefly.
const walLimit = 64 << 20

// checkpointer moves WAL checkpoints off the writer: the write connection
// runs with wal_autocheckpoint off, and this goroutine runs PASSIVE
// checkpoints on its own connection, which never block the writer or
// readers. Durability is unchanged: a commit is durable once its WAL
// frames are synced.
type checkpointer struct {
	wal  string // path of the WAL file
	db   *sql.DB
	stop chan struct{}
	done chan struct{}
}

func startCheckpointer(path string) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{wal: path + "-wal", db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			c.run()
			return
		case <-t.C:
			c.run()
		}
	}
}

func (c *checkpointer) run() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Errors are not fatal: a checkpoint not done now is done next time,
	// and the WAL keeps every committed frame until then.
	mode := "PASSIVE"
	if fi, err := os.Stat(c.wal); err == nil && fi.Size() > walLimit {
		mode = "TRUNCATE"
	}
	_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint("+mode+")")
}

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
