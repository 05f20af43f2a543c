package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// checkpointEvery is how often the background checkpointer copies WAL
// frames into the database file.
const checkpointEvery = 250 * time.Millisecond

// checkpointer moves WAL checkpoints off the writer: the write connection
// runs with wal_autocheckpoint off, and this goroutine runs PASSIVE
// checkpoints on its own connection, which never block the writer or
// readers. Durability is unchanged: a commit is durable once its WAL
// frames are synced.
type checkpointer struct {
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
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
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
	_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
}

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
