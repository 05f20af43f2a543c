// Package postgres is phivault's PostgreSQL storage backend, for several
// stateless phivault nodes sharing one database. It is reached through
// github.com/jackc/pgx/v5 and implements store.Backend natively, held to
// the same conformance suite as the embedded store.
//
// Durability: an Update returns nil only after its transaction's COMMIT
// returned, with synchronous_commit as the server has it (on by default:
// the commit record is flushed to the WAL). Do not run phivault against a
// server with synchronous_commit=off or fsync=off.
//
// Concurrency: each Backend (each node) queues its Update calls to one
// writer goroutine that group-commits them in one READ COMMITTED
// transaction (see commit.go). Every group transaction first locks the
// single audit_head row, so writing transactions of all nodes are totally
// ordered: audit indexes are dense and in commit order cluster-wide, and
// two groups can never deadlock on each other's rows. Put's version check
// is a conditional write on the current row (see Put), so concurrent Puts
// of one resource from any nodes have exactly one winner per version. View
// runs in a REPEATABLE READ, READ ONLY transaction: one consistent
// snapshot, no locks.
//
// Several nodes: Elector (leader.go) elects the one node that runs the
// cluster-wide jobs, by a session advisory lock, and fences their writes;
// NotifyChanges and Listen (notify.go) carry changed metadata keys to the
// other nodes through LISTEN/NOTIFY. Each holds a connection of its own,
// outside the pools.
//
// The database holds only resource types, ids, version ids, sequence
// numbers, timestamps and the opaque blobs the caller gives. The runtime
// role's privileges are listed at RuntimeGrants.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/group"
)

// Option configures Open.
type Option func(*options)

type options struct {
	readers  int
	maxBatch int
	migrate  bool
}

// WithReaders sets how many Views run at once, each on its own connection
// (default: GOMAXPROCS, at least 4). The writer has one more connection of
// its own, so Views never starve it.
func WithReaders(n int) Option { return func(o *options) { o.readers = max(n, 1) } }

// WithMaxBatch bounds how many Update calls share one commit (default 256).
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = max(n, 1) } }

// WithoutMigrate makes Open check the schema version without applying
// migrations (it fails with ErrSchemaBehind when some are pending).
func WithoutMigrate() Option { return func(o *options) { o.migrate = false } }

// Backend is the PostgreSQL storage backend. It implements store.Backend.
type Backend struct {
	opts  options
	rpool *pgxpool.Pool // Views
	wpool *pgxpool.Pool // the writer's one connection, replaced when it breaks

	progress *progress // when the writer's connection last finished a statement

	notify atomic.Pointer[[]string] // metadata key prefixes whose writes notify (NotifyChanges)

	writes  *group.Queue // Update calls, committed by commit
	retries atomic.Int64 // group transactions run again after a serialization failure

	mu     sync.RWMutex // guards closed; held shared by Views starting
	closed bool
	views  sync.WaitGroup
}

var _ store.Backend = (*Backend)(nil)

// Stats counts work done since Open.
type Stats struct {
	Commits int64 // durable group commits
	Updates int64 // Update calls they made durable
	Retries int64 // group transactions re-run after a serialization failure or deadlock
}

// Stats reports how many commits made how many Updates durable.
func (b *Backend) Stats() Stats {
	commits, updates := b.writes.Stats()
	return Stats{Commits: commits, Updates: updates, Retries: b.retries.Load()}
}

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string, as pgx accepts: sslmode=verify-full, search_path and
// the PG* environment variables work), applies pending schema migrations
// unless WithoutMigrate is given, and starts the writer.
func Open(ctx context.Context, dsn string, opts ...Option) (*Backend, error) {
	o := options{readers: max(runtime.GOMAXPROCS(0), 4), maxBatch: 256, migrate: true}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("postgres: cannot parse the database connection string")
	}
	wcfg := cfg.Copy()
	bound(cfg.ConnConfig, false)
	bound(wcfg.ConnConfig, true)
	prog := &progress{}
	wcfg.ConnConfig.Tracer = prog
	cfg.MaxConns = int32(o.readers)
	wcfg.MaxConns = 1
	rpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	wpool, err := pgxpool.NewWithConfig(ctx, wcfg)
	if err != nil {
		rpool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err = wpool.Ping(ctx); err != nil {
		err = fmt.Errorf("postgres: connect: %w", err)
	} else if o.migrate {
		err = Migrate(ctx, wpool)
	} else {
		err = checkSchema(ctx, wpool)
	}
	if err != nil {
		rpool.Close()
		wpool.Close()
		return nil, err
	}
	b := &Backend{
		opts:     o,
		rpool:    rpool,
		wpool:    wpool,
		progress: prog,
	}
	b.writes = group.Start("postgres", o.maxBatch, b.commit)
	return b, nil
}

// checkSchema fails unless the schema is at this binary's version.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var v int
	if err := pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("%w: %v", ErrSchemaBehind, err)
	}
	switch {
	case v > len(migrations):
		return fmt.Errorf("%w: version %d, known %d", errNewerSchema, v, len(migrations))
	case v < len(migrations):
		return fmt.Errorf("%w: version %d, need %d", ErrSchemaBehind, v, len(migrations))
	}
	return nil
}

// View implements store.Backend. fn sees one snapshot, taken at its first
// read.
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

	tx, err := b.beginRead(ctx)
	if err != nil {
		return err
	}
	r := &reader{ctx: ctx, tx: tx}
	err = fn(r)
	r.done = true
	if err != nil {
		// The server dropped the connection after BEGIN (a restart, a
		// terminated backend): the database is unavailable, as when BEGIN
		// fails, and the caller may try again.
		err = connErr(tx, err)
	}
	// Rollback of a read-only transaction loses nothing; a failure here
	// closes the connection, and the pool replaces it.
	_ = tx.Rollback(context.Background())
	return err
}

// beginRead starts a View's transaction. A connection the server dropped
// (a restart, a terminated backend) fails at BEGIN and is discarded; fn
// has not run, so another is tried. A database that does not answer
// within beginTimeout is unavailable.
func (b *Backend) beginRead(ctx context.Context) (pgx.Tx, error) {
	bctx, cancel := context.WithTimeout(ctx, beginTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		// The transaction outlives bctx: pgx watches a context only
		// during the call it is given to.
		tx, err := b.rpool.BeginTx(bctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		switch {
		case err == nil:
			return tx, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("postgres: begin read: %w", err)
		case bctx.Err() != nil || attempt == maxRetries:
			return nil, fmt.Errorf("postgres: begin read: %w: %w", store.ErrUnavailable, err)
		}
		select {
		case <-time.After(retryBackoff << attempt):
		case <-bctx.Done():
		}
	}
}

// Update implements store.Backend. fn runs on the writer goroutine.
func (b *Backend) Update(ctx context.Context, fn func(store.Writer) error) error {
	return b.writes.Update(ctx, fn)
}

// Close implements store.Backend: it refuses new calls, lets queued
// Updates commit, waits for running Views and closes the connections.
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
	b.rpool.Close()
	b.wpool.Close()
	return nil
}
