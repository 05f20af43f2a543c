package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// maxCachedStmts bounds each connection's prepared statement cache; Match
// prepares one statement per query shape (group sizes).
const maxCachedStmts = 256

// dbconn is one SQLite connection with its prepared statements. It is used
// by one goroutine at a time (the writer, or the View holding it).
type dbconn struct {
	c     *sql.Conn
	stmts map[string]*sql.Stmt
}

func newDBConn(c *sql.Conn) *dbconn {
	return &dbconn{c: c, stmts: make(map[string]*sql.Stmt)}
}

// stmt returns the cached prepared statement for query, preparing it once.
func (d *dbconn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := d.stmts[query]; ok {
		return s, nil
	}
	if len(d.stmts) >= maxCachedStmts {
		d.closeStmts()
	}
	s, err := d.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	d.stmts[query] = s
	return s, nil
}

func (d *dbconn) closeStmts() {
	for q, s := range d.stmts {
		_ = s.Close()
		delete(d.stmts, q)
	}
}

func (d *dbconn) close() error {
	d.closeStmts()
	return d.c.Close()
}

func (d *dbconn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := d.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (d *dbconn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := d.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

func (d *dbconn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := d.stmt(ctx, query)
	if err != nil {
		// sql.Row cannot be built with an error of ours; preparing failed,
		// so the unprepared query reports the same failure through Scan.
		return d.c.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// reader implements store.Reader over one connection inside a transaction.
type reader struct {
	ctx   context.Context
	db    *dbconn
	sizes *sizes // recent group sizes for choosing Match's driver; nil: count every time
	// postings (View readers only) holds large groups' postings in
	// memory for Match, as of generation gen, noted before the snapshot.
	postings *postings
	gen      uint64
	// snapped is set once Match or Carried has read from SQLite (which
	// takes the View's snapshot if no read before did) or snapshot ran.
	snapped bool
	done    bool // the View or Update fn returned; the connection is no longer ours
	// aborted (writers only) is set when SQLite rolled the group
	// transaction back; further statements would run outside any
	// transaction, so they are refused.
	aborted *atomic.Bool
}

var errDone = errors.New("sqlite: reader or writer used after its function returned")

// snapshot takes the View's snapshot if no read has taken it yet, for an
// answer from memory that must be tied to it (postings). SQLite starts a
// read transaction at the first statement that reads the file; reading
// the schema cookie reads only the header page, which starting it reads
// anyway.
func (r *reader) snapshot() error {
	if r.snapped {
		return nil
	}
	if _, err := r.db.exec(r.ctx, `PRAGMA schema_version`); err != nil {
		return fmt.Errorf("sqlite: take snapshot: %w", err)
	}
	r.snapped = true
	return nil
}

func (r *reader) check() error {
	if r.done {
		return errDone
	}
	if r.aborted != nil && r.aborted.Load() {
		return errGroupAborted
	}
	return nil
}

var _ store.Reader = (*reader)(nil)

const versionCols = `v.seq, v.rtype, v.rid, v.vid, v.updated, v.deleted, v.body`

func scanVersion(sc interface{ Scan(...any) error }) (store.Version, error) {
	var v store.Version
	var updated int64
	var body []byte
	if err := sc.Scan(&v.Seq, &v.Type, &v.ID, &v.VID, &updated, &v.Deleted, &body); err != nil {
		return store.Version{}, err
	}
	v.Updated = time.UnixMicro(updated).UTC()
	if len(body) > 0 {
		v.Body = body
	}
	return v, nil
}

func (r *reader) one(query string, args ...any) (store.Version, error) {
	if err := r.check(); err != nil {
		return store.Version{}, err
	}
	v, err := scanVersion(r.db.queryRow(r.ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Version{}, store.ErrNotFound
	}
	if err != nil {
		return store.Version{}, fmt.Errorf("sqlite: read version: %w", err)
	}
	return v, nil
}

// Current implements store.Reader.
func (r *reader) Current(typ, id string) (store.Version, error) {
	return r.one(`SELECT `+versionCols+` FROM current c JOIN versions v ON v.seq = c.seq
		WHERE c.rtype = ? AND c.rid = ?`, typ, id)
}

// CurrentMany implements store.Reader.
func (r *reader) CurrentMany(typ string, ids []string) ([]store.Version, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	// The ids drive (CROSS JOIN keeps them outer): a primary-key probe
	// per id.
	rows, err := r.db.query(r.ctx, `SELECT `+versionCols+` FROM json_each(?) j CROSS JOIN current c
		JOIN versions v ON v.seq = c.seq WHERE c.rtype = ? AND c.rid = j.value`, string(list), typ)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read versions: %w", err)
	}
	defer rows.Close()
	found := make(map[string]store.Version, len(ids))
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: read versions: %w", err)
		}
		found[v.ID] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read versions: %w", err)
	}
	return store.InOrder(ids, found), nil
}

// Get implements store.Reader.
func (r *reader) Get(typ, id string, vid int64) (store.Version, error) {
	return r.one(`SELECT `+versionCols+` FROM versions v WHERE v.rtype = ? AND v.rid = ? AND v.vid = ?`, typ, id, vid)
}

// History implements store.Reader.
func (r *reader) History(q store.HistoryQuery) ([]store.Version, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	before := int64(math.MaxInt64)
	if q.BeforeSeq > 0 {
		before = q.BeforeSeq
	}
	since := int64(math.MinInt64)
	if !q.Since.IsZero() {
		since = q.Since.UnixMicro()
		if q.Since.Nanosecond()%1000 != 0 {
			since++ // at or after a sub-microsecond instant: round up
		}
	}
	limit := int64(-1)
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}
	const tail = ` AND v.seq < ? AND v.updated >= ? ORDER BY v.seq DESC LIMIT ?`
	var rows *sql.Rows
	var err error
	switch {
	case q.Type == "" && q.ID == "":
		rows, err = r.db.query(r.ctx, `SELECT `+versionCols+` FROM versions v WHERE 1`+tail, before, since, limit)
	case q.ID == "":
		rows, err = r.db.query(r.ctx, `SELECT `+versionCols+` FROM versions v WHERE v.rtype = ?`+tail, q.Type, before, since, limit)
	case q.Type != "":
		rows, err = r.db.query(r.ctx, `SELECT `+versionCols+` FROM versions v WHERE v.rtype = ? AND v.rid = ?`+tail, q.Type, q.ID, before, since, limit)
	default:
		return nil, errors.New("sqlite: history: an id needs a type")
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: history: %w", err)
	}
	defer rows.Close()
	var out []store.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: history: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: history: %w", err)
	}
	return out, nil
}

// blob maps nil to an empty blob: the driver binds nil as NULL.
func blob(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

// Meta implements store.Reader.
func (r *reader) Meta(key string) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var v []byte
	err := r.db.queryRow(r.ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: meta: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// prefixEnd returns the smallest string greater than every string with the
// given prefix, or ok=false if there is none (prefix is all 0xff bytes).
func prefixEnd(prefix string) (end string, ok bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// MetaPrefix implements store.Reader.
func (r *reader) MetaPrefix(prefix string) ([]store.KV, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var rows *sql.Rows
	var err error
	if end, ok := prefixEnd(prefix); ok {
		rows, err = r.db.query(r.ctx, `SELECT key, value FROM meta WHERE key >= ? AND key < ? ORDER BY key`, prefix, end)
	} else {
		rows, err = r.db.query(r.ctx, `SELECT key, value FROM meta WHERE key >= ? ORDER BY key`, prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: meta prefix: %w", err)
	}
	defer rows.Close()
	var out []store.KV
	for rows.Next() {
		var kv store.KV
		if err := rows.Scan(&kv.Key, &kv.Value); err != nil {
			return nil, fmt.Errorf("sqlite: meta prefix: %w", err)
		}
		if kv.Value == nil {
			kv.Value = []byte{}
		}
		out = append(out, kv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: meta prefix: %w", err)
	}
	return out, nil
}

// AuditSize implements store.Reader.
func (r *reader) AuditSize() (int64, error) {
	if err := r.check(); err != nil {
		return 0, err
	}
	var n int64
	if err := r.db.queryRow(r.ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: audit size: %w", err)
	}
	return n, nil
}

// AuditLeaves implements store.Reader. A range reaching past the end of the
// log fails with store.ErrNotFound rather than returning fewer leaves.
func (r *reader) AuditLeaves(from, to int64) ([][]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if from < 0 || to < from {
		return nil, fmt.Errorf("sqlite: audit leaves: bad range [%d, %d)", from, to)
	}
	if from == to {
		return [][]byte{}, nil
	}
	size, err := r.AuditSize()
	if err != nil {
		return nil, err
	}
	if to > size {
		return nil, fmt.Errorf("%w: audit leaves [%d, %d) beyond size %d", store.ErrNotFound, from, to, size)
	}
	rows, err := r.db.query(r.ctx, `SELECT leaf FROM audit WHERE idx >= ? AND idx < ? ORDER BY idx`, from, to)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit leaves: %w", err)
	}
	defer rows.Close()
	out := make([][]byte, 0, to-from)
	for rows.Next() {
		var leaf []byte
		if err := rows.Scan(&leaf); err != nil {
			return nil, fmt.Errorf("sqlite: audit leaves: %w", err)
		}
		if leaf == nil {
			leaf = []byte{}
		}
		out = append(out, store.UnpackLeaf(leaf))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit leaves: %w", err)
	}
	return out, nil
}
