// Package sqlite is phivault's embedded storage backend: one SQLite
// database file in the data directory, reached through the pure-Go driver
// modernc.org/sqlite (no cgo).
//
// Durability: the database runs in WAL mode with synchronous=FULL, so an
// Update that returned nil survives kill -9 and power loss.
//
// Concurrency: Update calls are queued to a single writer goroutine that
// holds the only write connection and group-commits them (group.Queue,
// commit);
// View runs on a pool of read-only connections, each View in its own read
// transaction over a consistent WAL snapshot.
//
// The database holds only resource types, ids, version ids, sequence
// numbers, timestamps and the opaque blobs the caller gives (sealed bodies,
// blind tokens, metadata values, audit leaves). Locking the directory
// against a second process is the caller's job.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	sqlitedrv "modernc.org/sqlite"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/group"
)

// FileName is the database file's name inside the data directory.
const FileName = "phivault.db"

// Option configures Open.
type Option func(*options)

type options struct {
	readers  int
	maxBatch int
	// The checkpointer's settings (checkpoint.go); tests change them.
	checkpointEvery        time.Duration
	walLimit, walHardLimit int64
	cacheBytes             int64 // versionCacheBytes; tests lower it
	postingsBytes          int64 // postingsBytes; 0 (tests) keeps no sets
}

// WithReaders sets the number of read-only connections, that is how many
// Views run at once (default: GOMAXPROCS, at least 4).
func WithReaders(n int) Option { return func(o *options) { o.readers = max(n, 1) } }

// WithMaxBatch bounds how many Update calls share one commit (default 256).
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = max(n, 1) } }

// Backend is the SQLite storage backend. It implements store.Backend.
type Backend struct {
	opts    options
	writeDB *sql.DB
	readDB  *sql.DB
	wconn   *dbconn      // owned by the writer (commit)
	aborted atomic.Bool  // set by the rollback hook on the write connection
	readers chan *dbconn // idle read connections

	writes *group.Queue // Update calls, committed by commit

	mu       sync.RWMutex // guards closed; held shared by Views starting
	closed   bool
	views    sync.WaitGroup
	ckpt     *checkpointer
	sizes    *sizes // shared by every reader and writer
	cache    *versionCache
	postings *postings
	// written lists the resources the group being committed put
	// (writer goroutine only), for the cache to drop once it commits;
	// indexed is set when it changed idx rows.
	written []versionKey
	indexed bool
}

var _ store.Backend = (*Backend)(nil)

// Stats counts work done since Open.
type Stats struct {
	Commits int64 // durable group commits (one fsync each)
	Updates int64 // Update calls they made durable
}

// Stats reports how many commits made how many Updates durable; the ratio
// is the mean group size.
func (b *Backend) Stats() Stats {
	commits, updates := b.writes.Stats()
	return Stats{Commits: commits, Updates: updates}
}

// busyTimeout is how long a connection waits for a lock another holds.
const busyTimeout = 10 * time.Second

// dsn returns the connection string; every pragma applies to each new
// connection.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "cache_size(-32768)") // 32 MiB per reader
	} else {
		// A big page cache keeps large transactions (an imported bundle
		// writes tens of thousands of index rows) from spilling to the WAL
		// before commit.
		q.Add("_pragma", "cache_size(-262144)") // 256 MiB for the writer
		// Checkpoints run in the background (checkpoint.go), not inside
		// the writer's commits.
		q.Add("_pragma", "wal_autocheckpoint(0)")
		// Deleted and overwritten content is zeroed, so a destroyed data
		// key's wrapped copy does not linger in free space (see Scrub).
		q.Add("_pragma", "secure_delete(1)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database in dir and applies any
// pending schema migrations.
func Open(dir string, opts ...Option) (_ *Backend, err error) {
	o := options{readers: max(runtime.GOMAXPROCS(0), 4), maxBatch: 256,
		checkpointEvery: checkpointEvery, walLimit: walLimit, walHardLimit: walHardLimit,
		cacheBytes: versionCacheBytes, postingsBytes: postingsBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// The database holds only ciphertext, but it is still nobody else's
	// business: owner-only, like its WAL (which SQLite creates with the
	// database file's mode).
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	b := &Backend{
		opts:    o,
		readers: make(chan *dbconn, o.readers),
		sizes:   newSizes(),
		cache:   newVersionCache(o.cacheBytes),
	}
	if o.postingsBytes > 0 {
		b.postings = newPostings(o.postingsBytes)
	}
	defer func() {
		if err != nil {
			b.closeConns()
		}
	}()
	ctx := context.Background()
	if b.writeDB, err = sql.Open("sqlite", dsn(path, false)); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	b.writeDB.SetMaxOpenConns(1)
	c, err := b.writeDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	b.wconn = newDBConn(c)
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		return nil, fmt.Errorf("sqlite: enable WAL (mode %q): %v", mode, err)
	}
	if err := c.Raw(func(dc any) error {
		h, ok := dc.(interface {
			RegisterRollbackHook(sqlitedrv.RollbackHookFn)
		})
		if !ok {
			return errors.New("sqlite: driver has no rollback hook")
		}
		h.RegisterRollbackHook(func() { b.aborted.Store(true) })
		return nil
	}); err != nil {
		return nil, err
	}
	if err := migrate(ctx, c); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	if b.readDB, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	b.readDB.SetMaxOpenConns(o.readers)
	b.readDB.SetMaxIdleConns(o.readers)
	for range o.readers {
		c, err := b.readDB.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open reader: %w", err)
		}
		b.readers <- newDBConn(c)
	}
	if b.ckpt, err = startCheckpointer(path, o); err != nil {
		return nil, fmt.Errorf("sqlite: checkpointer: %w", err)
	}
	b.writes = group.Start("sqlite", o.maxBatch, b.commit)
	return b, nil
}

// syncDir makes the creation of the database and WAL files durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", dir, err)
	}
	return nil
}

// View implements store.Backend. fn sees one consistent snapshot: the read
// transaction pins the WAL snapshot before fn runs.
func (b *Backend) View(ctx context.Context, fn func(store.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return store.ErrClosed
	}
	b.views.Add(1)
	b.mu.RUnlock()
	defer b.views.Done()

	var d *dbconn
	select {
	case d = <-b.readers:
	case <-ctx.Done():
		return ctx.Err()
	}
	// BEGIN and ROLLBACK run as the connection's cached statements:
	// preparing them for every View cost about 2% of the server's CPU
	// under reads.
	if _, err := d.exec(ctx, "BEGIN"); err != nil {
		// BEGIN may have taken effect before failing (a context cancelled
		// as it ran): a connection handed back inside a transaction would
		// fail every later BEGIN. end rolls it back, or replaces it.
		_ = b.end(d)
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	// The snapshot is taken by fn's first read (SQLite starts a deferred
	// transaction's read there); every later read sees the same one.
	r := &reader{ctx: ctx, db: d, sizes: b.sizes}
	if b.postings != nil {
		r.postings, r.gen = b.postings, b.postings.generation()
	}
	err := fn(r)
	r.done = true
	return errors.Join(err, b.end(d))
}

// end ends the read transaction d is in, if any, and hands d back to the
// pool; when ROLLBACK fails (no transaction was open, or the connection
// is broken) a new connection takes its place. The error is only that of
// making the new connection; the pool stays full either way.
func (b *Backend) end(d *dbconn) error {
	if _, rerr := d.exec(context.Background(), "ROLLBACK"); rerr != nil {
		_ = d.close()
		nc, cerr := b.readDB.Conn(context.Background())
		if cerr != nil {
			// Keep the pool full; the broken connection fails its next use.
			b.readers <- d
			return fmt.Errorf("sqlite: end read: %w", errors.Join(rerr, cerr))
		}
		d = newDBConn(nc)
	}
	b.readers <- d
	return nil
}

// Update implements store.Backend. fn runs on the writer goroutine, in a
// group with the other Updates waiting then (group.Queue.Update).
func (b *Backend) Update(ctx context.Context, fn func(store.Writer) error) error {
	return b.writes.Update(ctx, fn)
}

// Close implements store.Backend: it refuses new calls, lets queued
// Updates commit, waits for running Views and closes the database.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.writes.Close()
	b.views.Wait()
	return b.closeConns()
}

func (b *Backend) closeConns() error {
	var errs []error
	if b.ckpt != nil {
		errs = append(errs, b.ckpt.close())
	}
	if b.readers != nil {
	drain:
		for {
			select {
			case d := <-b.readers:
				errs = append(errs, d.close())
			default:
				break drain
			}
		}
	}
	if b.readDB != nil {
		errs = append(errs, b.readDB.Close())
	}
	if b.wconn != nil {
		errs = append(errs, b.wconn.close())
	}
	if b.writeDB != nil {
		errs = append(errs, b.writeDB.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}
