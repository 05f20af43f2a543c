package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/phivault/phivault/internal/store"
)

// reader implements store.Reader inside one transaction: a View's
// REPEATABLE READ snapshot, or the writer's group transaction.
type reader struct {
	ctx  context.Context
	tx   pgx.Tx
	done bool  // the View or Update fn returned; the transaction is no longer ours
	err  error // the first database error, which aborts a PostgreSQL transaction
}

var _ store.Reader = (*reader)(nil)

var errDone = errors.New("postgres: reader or writer used after its function returned")

func (r *reader) check() error {
	if r.done {
		return errDone
	}
	return nil
}

// note records err as the transaction's first failure (pgx.ErrNoRows is an
// answer, not a failure).
func (r *reader) note(err error) error {
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && r.err == nil {
		r.err = err
	}
	return err
}

func (r *reader) exec(query string, args ...any) (pgconn.CommandTag, error) {
	tag, err := r.tx.Exec(r.ctx, query, args...)
	return tag, r.note(err)
}

func (r *reader) scanRow(query string, args []any, dest ...any) error {
	return r.note(r.tx.QueryRow(r.ctx, query, args...).Scan(dest...))
}

// collect runs query and scans every row with scan.
func collect[T any](r *reader, query string, args []any, scan func(pgx.CollectableRow) (T, error)) ([]T, error) {
	rows, err := r.tx.Query(r.ctx, query, args...)
	if err != nil {
		return nil, r.note(err)
	}
	out, err := pgx.CollectRows(rows, scan)
	return out, r.note(err)
}

const versionCols = `v.seq, v.rtype, v.rid, v.vid, v.updated, v.deleted, v.body`

func scanVersion(row pgx.CollectableRow) (store.Version, error) {
	var v store.Version
	var body []byte
	if err := row.Scan(&v.Seq, &v.Type, &v.ID, &v.VID, &v.Updated, &v.Deleted, &body); err != nil {
		return store.Version{}, err
	}
	v.Updated = v.Updated.UTC()
	if len(body) > 0 {
		v.Body = body
	}
	return v, nil
}

func (r *reader) one(query string, args ...any) (store.Version, error) {
	if err := r.check(); err != nil {
		return store.Version{}, err
	}
	vs, err := collect(r, query, args, scanVersion)
	if err != nil {
		return store.Version{}, fmt.Errorf("postgres: read version: %w", err)
	}
	if len(vs) == 0 {
		return store.Version{}, store.ErrNotFound
	}
	return vs[0], nil
}

// Current implements store.Reader.
func (r *reader) Current(typ, id string) (store.Version, error) {
	return r.one(`SELECT `+versionCols+` FROM current c JOIN versions v ON v.seq = c.seq
		WHERE c.rtype = $1 AND c.rid = $2`, typ, id)
}

// CurrentMany implements store.Reader.
func (r *reader) CurrentMany(typ string, ids []string) ([]store.Version, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vs, err := collect(r, `SELECT `+versionCols+` FROM current c JOIN versions v ON v.seq = c.seq
		WHERE c.rtype = $1 AND c.rid = ANY($2)`, []any{typ, ids}, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("postgres: read versions: %w", err)
	}
	found := make(map[string]store.Version, len(vs))
	for _, v := range vs {
		found[v.ID] = v
	}
	return store.InOrder(ids, found), nil
}

// Get implements store.Reader.
func (r *reader) Get(typ, id string, vid int64) (store.Version, error) {
	return r.one(`SELECT `+versionCols+` FROM versions v WHERE v.rtype = $1 AND v.rid = $2 AND v.vid = $3`, typ, id, vid)
}

// History implements store.Reader.
func (r *reader) History(q store.HistoryQuery) ([]store.Version, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	switch {
	case q.Type == "" && q.ID == "":
	case q.ID == "":
		arg("v.rtype = ?", q.Type)
	case q.Type != "":
		arg("v.rtype = ?", q.Type)
		arg("v.rid = ?", q.ID)
	default:
		return nil, errors.New("postgres: history: an id needs a type")
	}
	if q.BeforeSeq > 0 {
		arg("v.seq < ?", q.BeforeSeq)
	}
	if !q.Since.IsZero() {
		since := q.Since.Truncate(time.Microsecond)
		if since.Before(q.Since) {
			since = since.Add(time.Microsecond) // at or after a sub-microsecond instant: round up
		}
		arg("v.updated >= ?", since)
	}
	query := `SELECT ` + versionCols + ` FROM versions v`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY v.seq DESC`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query += ` LIMIT $` + strconv.Itoa(len(args))
	}
	out, err := collect(r, query, args, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("postgres: history: %w", err)
	}
	return out, nil
}

// blob maps nil to an empty bytea: pgx binds nil as NULL.
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
	err := r.scanRow(`SELECT value FROM meta WHERE key = $1`, []any{[]byte(key)}, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: meta: %w", err)
	}
	return blob(v), nil
}

// prefixEnd returns the smallest byte string greater than every string
// with the given prefix, or ok=false if there is none (all 0xff bytes).
func prefixEnd(prefix string) (end []byte, ok bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1], true
		}
	}
	return nil, false
}

func scanKV(row pgx.CollectableRow) (store.KV, error) {
	var k, v []byte
	if err := row.Scan(&k, &v); err != nil {
		return store.KV{}, err
	}
	return store.KV{Key: string(k), Value: blob(v)}, nil
}

// MetaPrefix implements store.Reader.
func (r *reader) MetaPrefix(prefix string) ([]store.KV, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	query, args := `SELECT key, value FROM meta WHERE key >= $1 ORDER BY key`, []any{[]byte(prefix)}
	if end, ok := prefixEnd(prefix); ok {
		query, args = `SELECT key, value FROM meta WHERE key >= $1 AND key < $2 ORDER BY key`, append(args, end)
	}
	out, err := collect(r, query, args, scanKV)
	if err != nil {
		return nil, fmt.Errorf("postgres: meta prefix: %w", err)
	}
	return out, nil
}

// AuditSize implements store.Reader.
func (r *reader) AuditSize() (int64, error) {
	if err := r.check(); err != nil {
		return 0, err
	}
	var n int64
	if err := r.scanRow(`SELECT size FROM audit_head`, nil, &n); err != nil {
		return 0, fmt.Errorf("postgres: audit size: %w", err)
	}
	return n, nil
}

// AuditLeaves implements store.Reader. A range reaching past the end of the
// log fails with store.ErrNotFound rather than returning fewer leaves.
//
// Rows missing below audit_head's size (deleted or moved by someone with
// the owner role) are not an error: like the SQLite backend, it returns
// the rows present, in index order, so that audit.Verify sees a short read
// and names the first missing leaf instead of failing as a whole. Callers
// that need a dense range check the count (the audit package does).
func (r *reader) AuditLeaves(from, to int64) ([][]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if from < 0 || to < from {
		return nil, fmt.Errorf("postgres: audit leaves: bad range [%d, %d)", from, to)
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
	out, err := collect(r, `SELECT leaf FROM audit WHERE idx >= $1 AND idx < $2 ORDER BY idx`, []any{from, to},
		func(row pgx.CollectableRow) ([]byte, error) {
			var leaf []byte
			err := row.Scan(&leaf)
			return store.UnpackLeaf(blob(leaf)), err
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: audit leaves: %w", err)
	}
	return out, nil
}
