package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store"
)

// idleLeaderPings: the server ends a leader's lock session that sent
// nothing for this many Intervals (the leader pings every Interval).
const idleLeaderPings = 10

// ErrNotLeader is returned by the Updates of a fenced Backend (Term.Fenced)
// once its term has ended: the write was not made.
var ErrNotLeader = errors.New("postgres: this node no longer leads; the write was not made")

// Elector campaigns for the leadership of one named role (for example
// "jobs") among the nodes sharing a database and schema. Leadership is a
// session-level PostgreSQL advisory lock, taken with pg_try_advisory_lock
// on a connection of its own that is held for the whole term: the server
// releases it the moment that session ends (the leader exits, is killed,
// or its connection is terminated or lost), and the term ends on the
// leader's side as soon as it sees its connection fail.
//
// The lock key is derived from the role name and the schema
// (current_schema()), so installations sharing one database in separate
// schemas elect separately.
type Elector struct {
	b        *Backend
	cfg      *pgx.ConnConfig
	name     string
	interval time.Duration
	log      *slog.Logger
}

// ElectorOptions tune an Elector; zero values are defaults.
type ElectorOptions struct {
	// Interval is how often a follower tries to take the lock, and how
	// often a leader checks its connection when the server is silent
	// (default 1s). Failover takes at most about one Interval after the
	// server released the lock.
	Interval time.Duration
	Logger   *slog.Logger // default slog.Default()
}

// Elector returns an Elector for the role name among the nodes sharing
// b's database and schema.
func (b *Backend) Elector(name string, o ElectorOptions) *Elector {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// The copy keeps the pools' bounds (silence.go): the server notices a
	// vanished TCP peer by its keepalives. A leader cut off from the
	// database without its connection failing (a silent network) stops
	// pinging: the server ends the session after idle_session_timeout,
	// which releases the lock, while the leader's own failing ping has
	// ended its term by then (watch).
	cfg := b.wpool.Config().ConnConfig.Copy()
	cfg.Tracer = nil // its pings are not the writer's progress
	cfg.RuntimeParams["idle_session_timeout"] = strconv.FormatInt((idleLeaderPings * o.Interval).Milliseconds(), 10)
	cfg.RuntimeParams["application_name"] = "phivault leader " + name
	return &Elector{b: b, cfg: cfg, name: name, interval: o.Interval, log: o.Logger}
}

// Campaign blocks until this node leads, and returns its term; or until
// ctx ends, returning ctx's error. Connection failures while campaigning
// are logged and retried every Interval. ctx bounds the campaign only:
// the term lives until Resign is called or its connection fails, so that
// a leader shutting down can finish its work (a final checkpoint) before
// it resigns.
func (e *Elector) Campaign(ctx context.Context) (*Term, error) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = pgx.ConnectConfig(ctx, e.cfg); err != nil {
				conn = nil
				if ctx.Err() == nil {
					e.log.Warn("leader election: cannot connect to the database", "role", e.name, "err", err)
				}
			}
		}
		if conn != nil {
			t, err := e.try(ctx, conn)
			switch {
			case err != nil && ctx.Err() == nil:
				e.log.Warn("leader election: cannot take the lock", "role", e.name, "err", err)
				conn.Close(context.Background())
				conn = nil
			case t != nil:
				conn = nil // the term owns it
				return t, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(e.interval):
		}
	}
}

// try takes the lock on conn, returning a started term, or nil when
// another session holds it.
func (e *Elector) try(ctx context.Context, conn *pgx.Conn) (*Term, error) {
	var key int64
	var ok bool
	err := conn.QueryRow(ctx,
		`SELECT k, pg_try_advisory_lock(k) FROM (SELECT hashtextextended('phivault leader/' || current_schema() || '/' || $1, 0) AS k) s`,
		e.name).Scan(&key, &ok)
	if err != nil || !ok {
		return nil, err
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t := &Term{b: e.b, conn: conn, key: key, pid: conn.PgConn().PID(), lost: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go t.watch(tctx, e.interval, e.log, e.name)
	return t, nil
}

// Term is one leadership term. Lost is closed as soon as it ends.
type Term struct {
	b      *Backend
	conn   *pgx.Conn // owned by watch
	key    int64
	pid    uint32 // the server process holding the lock
	lost   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Lost is closed when the term ends: the connection holding the lock
// failed, or Resign was called. The node must stop
// its leader-only work at once; Fenced refuses its writes from then on.
func (t *Term) Lost() <-chan struct{} { return t.lost }

// PID is the server process id of the session holding the lock (the pid
// column of pg_stat_activity and pg_locks).
func (t *Term) PID() uint32 { return t.pid }

// Resign ends the term: it releases the lock (by closing its session) and
// waits until Lost is closed. Safe to call more than once.
func (t *Term) Resign() {
	t.cancel()
	<-t.done
}

// watch holds the term. It waits on the connection (a terminated session
// or a closed socket is seen at once) and pings it every interval, so a
// server that stopped answering ends the term within about two intervals.
func (t *Term) watch(ctx context.Context, interval time.Duration, log *slog.Logger, name string) {
	defer close(t.done)
	defer t.conn.Close(context.Background()) // ends the session: the server releases the lock
	defer t.once.Do(func() { close(t.lost) })
	log.Info("leader election: this node leads", "role", name, "pid", t.pid)
	for {
		wctx, cancel := context.WithTimeout(ctx, interval)
		err := t.conn.PgConn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			log.Info("leader election: resigned", "role", name)
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("leader election: lost the connection holding leadership", "role", name, "err", err)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		err = t.conn.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			log.Info("leader election: resigned", "role", name)
			return
		}
		if err != nil {
			log.Warn("leader election: the database stopped answering the leader", "role", name, "err", err)
			return
		}
	}
}

// Fenced returns the node's Backend with every Update checked against
// this term: inside the Update's own transaction, before its fn runs, it
// verifies that the session holding the term still holds the lock, and
// fails with ErrNotLeader otherwise. Since every writing transaction of
// every node is ordered by the audit head lock (see beginWrite), no write
// of an ended term commits after a write of the next term. Views pass
// through; Close does nothing.
func (t *Term) Fenced() store.Backend { return fenced{t.b, t} }

type fenced struct {
	*Backend
	t *Term
}

// Close does nothing: the Backend belongs to the node, not to the term.
func (fenced) Close() error { return nil }

func (f fenced) Update(ctx context.Context, fn func(store.Writer) error) error {
	return f.Backend.Update(ctx, func(w store.Writer) error {
		if err := f.t.check(w); err != nil {
			return err
		}
		return fn(w)
	})
}

// check verifies, in w's transaction, that the term's session holds its
// lock.
func (t *Term) check(w store.Writer) error {
	select {
	case <-t.lost:
		return ErrNotLeader
	default:
	}
	pw, ok := w.(*writer)
	if !ok {
		return fmt.Errorf("postgres: fenced update given a foreign writer %T", w)
	}
	if err := pw.check(); err != nil {
		return err
	}
	classid, objid := int64(uint32(uint64(t.key)>>32)), int64(uint32(uint64(t.key)))
	var held bool
	err := pw.scanRow(`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND pid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $2::bigint::oid AND objid = $3::bigint::oid AND objsubid = 1)`,
		[]any{int64(t.pid), classid, objid}, &held)
	if err != nil {
		return fmt.Errorf("postgres: check leadership: %w", err)
	}
	if !held {
		return ErrNotLeader
	}
	return nil
}
