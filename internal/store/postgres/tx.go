package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store"
)

// writer implements store.Writer for one Update fn inside the group
// transaction. It reads its own writes (and those of the fns before it in
// the same group, which commit or fail with it).
type writer struct {
	reader
	b *Backend // for NotifyChanges; nil in a writer without a Backend
}

var _ store.Writer = (*writer)(nil)

// Put is one statement (one round trip), which matters: the writer runs a
// group's fns one after another, so per-statement latency bounds a node's
// write rate.
//
// putFirst creates a resource: the current row is inserted only if absent
// (a concurrent creator's uncommitted row is waited for, then counts as
// present), and the version and token rows only if the current row was.
const putFirst = `WITH c AS (
	INSERT INTO current (rtype, rid, vid, seq, deleted) VALUES ($1, $2, 1, nextval('versions_seq'), $3)
	ON CONFLICT (rtype, rid) DO NOTHING RETURNING seq),
v AS (INSERT INTO versions (seq, rtype, rid, vid, updated, deleted, body)
	SELECT seq, $1, $2, 1, $4, $3, $5 FROM c RETURNING seq),
t AS (INSERT INTO idx (token, rtype, rid)
	SELECT tok, $1, $2 FROM unnest($6::bytea[]) tok WHERE EXISTS (SELECT 1 FROM c) ON CONFLICT DO NOTHING)
SELECT seq FROM v`

// putNext writes the next version: the current row is updated only if it
// still holds the previous version. Under READ COMMITTED a concurrent
// writer's row lock is waited for and the condition re-checked on the row
// it committed, so of two racing Puts of one version exactly one matches.
// The tokens no longer carried are deleted and the new ones inserted (the
// two sets are disjoint, so one statement can do both).
const putNext = `WITH c AS (
	UPDATE current SET vid = $3, seq = nextval('versions_seq'), deleted = $4
	WHERE rtype = $1 AND rid = $2 AND vid = $3 - 1 RETURNING seq),
v AS (INSERT INTO versions (seq, rtype, rid, vid, updated, deleted, body)
	SELECT seq, $1, $2, $3, $5, $4, $6 FROM c RETURNING seq),
d AS (DELETE FROM idx WHERE rtype = $1 AND rid = $2 AND EXISTS (SELECT 1 FROM c) AND token <> ALL ($7::bytea[])),
t AS (INSERT INTO idx (token, rtype, rid)
	SELECT tok, $1, $2 FROM unnest($7::bytea[]) tok WHERE EXISTS (SELECT 1 FROM c) ON CONFLICT DO NOTHING)
SELECT seq FROM v`

// Put implements store.Writer. A version conflict is no database error: the
// transaction stays usable and fn may go on.
func (w *writer) Put(v store.Version, tokens []store.Token) (store.Version, error) {
	if err := w.check(); err != nil {
		return store.Version{}, err
	}
	if v.Type == "" || v.ID == "" {
		return store.Version{}, errors.New("postgres: put needs a type and an id")
	}
	v.Updated = v.Updated.UTC().Truncate(time.Microsecond) // as stored
	ts := [][]byte{}
	if v.Deleted {
		v.Body = nil // and the tokens are cleared
	} else {
		ts = tokenArray(tokens)
	}
	var err error
	switch {
	case v.VID == 1:
		err = w.scanRow(putFirst, []any{v.Type, v.ID, v.Deleted, v.Updated, blob(v.Body), ts}, &v.Seq)
	case v.VID > 1:
		err = w.scanRow(putNext, []any{v.Type, v.ID, v.VID, v.Deleted, v.Updated, blob(v.Body), ts}, &v.Seq)
	default:
		err = pgx.ErrNoRows
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Version{}, w.conflict(v)
	}
	if err != nil {
		return store.Version{}, fmt.Errorf("postgres: put: %w", err)
	}
	return v, nil
}

// reindex replaces a live version's tokens in one statement; the current
// row is locked, so a concurrent Put of the next version waits for this
// transaction (and then indexes the resource itself), or has committed
// before it and the condition fails.
const reindex = `WITH c AS (
	SELECT 1 FROM current WHERE rtype = $1 AND rid = $2 AND vid = $3 AND NOT deleted FOR UPDATE),
d AS (DELETE FROM idx WHERE rtype = $1 AND rid = $2 AND EXISTS (SELECT 1 FROM c) AND token <> ALL ($4::bytea[])),
t AS (INSERT INTO idx (token, rtype, rid)
	SELECT tok, $1, $2 FROM unnest($4::bytea[]) tok WHERE EXISTS (SELECT 1 FROM c) ON CONFLICT DO NOTHING)
SELECT count(*) FROM c`

// Reindex implements store.Writer.
func (w *writer) Reindex(typ, id string, vid int64, tokens []store.Token) error {
	if err := w.check(); err != nil {
		return err
	}
	var n int64
	if err := w.scanRow(reindex, []any{typ, id, vid, tokenArray(tokens)}, &n); err != nil {
		return fmt.Errorf("postgres: reindex: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s/%s is not at live version %d", store.ErrConflict, typ, id, vid)
	}
	return nil
}

// conflict builds Put's ErrConflict, naming the version that was expected.
func (w *writer) conflict(v store.Version) error {
	var cur int64
	err := w.scanRow(`SELECT vid FROM current WHERE rtype = $1 AND rid = $2`, []any{v.Type, v.ID}, &cur)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: put: %w", err)
	}
	return fmt.Errorf("%w: got version %d, want %d", store.ErrConflict, v.VID, cur+1)
}

// SetMeta implements store.Writer.
func (w *writer) SetMeta(key string, value []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	if _, err := w.exec(`INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, []byte(key), blob(value)); err != nil {
		return fmt.Errorf("postgres: set meta: %w", err)
	}
	return w.noteChange(key)
}

// CreateMeta implements store.Writer.
func (w *writer) CreateMeta(key string, value []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	tag, err := w.exec(`INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, []byte(key), blob(value))
	if err != nil {
		return fmt.Errorf("postgres: create meta: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return w.noteChange(key)
}

// DeleteMeta implements store.Writer.
func (w *writer) DeleteMeta(key string) error {
	if err := w.check(); err != nil {
		return err
	}
	if _, err := w.exec(`DELETE FROM meta WHERE key = $1`, []byte(key)); err != nil {
		return fmt.Errorf("postgres: delete meta: %w", err)
	}
	return w.noteChange(key)
}

// AppendAudit implements store.Writer. The index is the log's size, kept in
// audit_head, whose row the group transaction holds locked until it
// commits: indexes are dense and in commit order across all nodes, and a
// rolled-back fn gives its indexes back.
func (w *writer) AppendAudit(leaf []byte) (int64, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	var idx int64
	if err := w.scanRow(`WITH h AS (UPDATE audit_head SET size = size + 1 RETURNING size - 1 AS idx)
		INSERT INTO audit (idx, leaf) SELECT idx, $1 FROM h RETURNING idx`, []any{blob(store.PackLeaf(leaf))}, &idx); err != nil {
		return 0, fmt.Errorf("postgres: append audit: %w", err)
	}
	return idx, nil
}
