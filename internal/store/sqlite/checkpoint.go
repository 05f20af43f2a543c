package sqlite

import (
	"context"
	"database/sql"
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

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
