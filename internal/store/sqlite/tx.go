package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/phivault/phivault/internal/store"
)

// writer implements store.Writer for one Update fn, inside that fn's
// savepoint on the write connection. It reads its own writes (and those of
// the fns before it in the same group, which commit or fail with it).
type writer struct {
	reader
	// nextAudit is the index of the next audit leaf this fn appends, once
	// haveNext is set. Only the one writer goroutine appends, and only
	// through this writer while fn runs, so after its first append the fn
	// knows the log's size without asking; a rolled-back fn's writer is
	// dropped with its guess.
	nextAudit int64
	haveNext  bool
	// written collects the resources put, for the version cache to drop
	// once the group's commit ends (Backend.written).
	written *[]versionKey
	// indexed is set once the group changes idx rows (replaceTokens).
	indexed *bool
}

var _ store.Writer = (*writer)(nil)

// Put implements store.Writer.
func (w *writer) Put(v store.Version, tokens []store.Token) (store.Version, error) {
	if err := w.check(); err != nil {
		return store.Version{}, err
	}
	if v.Type == "" || v.ID == "" {
		return store.Version{}, errors.New("sqlite: put needs a type and an id")
	}
	var set []store.Token
	var toks []byte
	if !v.Deleted {
		var err error
		if set, toks, err = tokenSet(tokens); err != nil {
			return store.Version{}, err
		}
	}
	var cur, curSeq int64
	var curDeleted bool
	err := w.db.queryRow(w.ctx, `SELECT vid, seq, deleted FROM current WHERE rtype = ? AND rid = ?`, v.Type, v.ID).Scan(&cur, &curSeq, &curDeleted)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.Version{}, fmt.Errorf("sqlite: put: %w", err)
	}
	if v.VID != cur+1 {
		return store.Version{}, fmt.Errorf("%w: got version %d, want %d", store.ErrConflict, v.VID, cur+1)
	}
	*w.written = append(*w.written, versionKey{v.Type, v.ID})
	v.Updated = v.Updated.UTC().Truncate(1000) // microseconds, as stored
	if v.Deleted {
		v.Body = nil
	}
	res, err := w.db.exec(w.ctx, `INSERT INTO versions (rtype, rid, vid, updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?)`,
		v.Type, v.ID, v.VID, v.Updated.UnixMicro(), v.Deleted, blob(v.Body))
	if err != nil {
		return store.Version{}, fmt.Errorf("sqlite: put version: %w", err)
	}
	if v.Seq, err = res.LastInsertId(); err != nil {
		return store.Version{}, fmt.Errorf("sqlite: put version: %w", err)
	}
	if _, err := w.db.exec(w.ctx, `INSERT INTO current (rtype, rid, vid, seq, deleted) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (rtype, rid) DO UPDATE SET vid = excluded.vid, seq = excluded.seq, deleted = excluded.deleted`,
		v.Type, v.ID, v.VID, v.Seq, v.Deleted); err != nil {
		return store.Version{}, fmt.Errorf("sqlite: put current: %w", err)
	}
	var old []store.Token
	if cur > 0 && !curDeleted {
		if old, err = w.takeTokset(curSeq); err != nil {
			return store.Version{}, fmt.Errorf("sqlite: put tokens of %s/%s: %w", v.Type, v.ID, err)
		}
	}
	if err := w.replaceTokens(v.Type, v.ID, old, set); err != nil {
		return store.Version{}, fmt.Errorf("sqlite: put tokens: %w", err)
	}
	if !v.Deleted {
		if err := w.putTokset(v.Seq, toks); err != nil {
			return store.Version{}, fmt.Errorf("sqlite: put tokens: %w", err)
		}
	}
	return v, nil
}

// Reindex implements store.Writer.
func (w *writer) Reindex(typ, id string, vid int64, tokens []store.Token) error {
	if err := w.check(); err != nil {
		return err
	}
	set, toks, err := tokenSet(tokens)
	if err != nil {
		return err
	}
	var cur, seq int64
	var deleted bool
	err = w.db.queryRow(w.ctx, `SELECT vid, deleted, seq FROM current WHERE rtype = ? AND rid = ?`, typ, id).Scan(&cur, &deleted, &seq)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (cur != vid || deleted) {
		return fmt.Errorf("%w: %s/%s is not at live version %d", store.ErrConflict, typ, id, vid)
	}
	if err != nil {
		return fmt.Errorf("sqlite: reindex: %w", err)
	}
	old, err := w.readTokset(seq)
	if err != nil {
		return fmt.Errorf("sqlite: reindex %s/%s: %w", typ, id, err)
	}
	if err := w.replaceTokens(typ, id, old, set); err != nil {
		return fmt.Errorf("sqlite: reindex: %w", err)
	}
	if err := w.putTokset(seq, toks); err != nil {
		return fmt.Errorf("sqlite: reindex: %w", err)
	}
	return nil
}

// tokenChunk is how many index rows one statement writes or deletes: one
// statement per row costs more than the change itself.
const tokenChunk = 64

// replaceTokens turns the idx rows of typ/id from the set old into the set
// next (both sorted, as tokenSet and a tokset keep them) by writing only
// the difference: an update changes a few of a resource's tokens.
func (w *writer) replaceTokens(typ, id string, old, next []store.Token) error {
	gone, added := diffTokens(old, next)
	if len(gone)+len(added) > 0 {
		*w.indexed = true
	}
	if err := w.tokenRows(deleteTokenSQL[:], typ, id, gone); err != nil {
		return err
	}
	return w.tokenRows(insertTokenSQL[:], typ, id, added)
}

// tokenRows runs stmts[n] (for n tokens, n <= tokenChunk) over tokens in
// chunks; each statement takes typ, id, then its tokens.
func (w *writer) tokenRows(stmts []string, typ, id string, tokens []store.Token) error {
	for len(tokens) > 0 {
		n := min(len(tokens), tokenChunk)
		args := make([]any, 0, 2+n)
		args = append(args, typ, id)
		for _, t := range tokens[:n] {
			args = append(args, blob(t))
		}
		if _, err := w.db.exec(w.ctx, stmts[n], args...); err != nil {
			return err
		}
		tokens = tokens[n:]
	}
	return nil
}

// insertTokenSQL[n] and deleteTokenSQL[n] write and delete the idx rows
// of one resource for n tokens.
var insertTokenSQL, deleteTokenSQL [tokenChunk + 1]string

func init() {
	var ins, del strings.Builder
	ins.WriteString("INSERT OR IGNORE INTO idx (rtype, rid, token) VALUES ")
	del.WriteString("DELETE FROM idx WHERE rtype = ?1 AND rid = ?2 AND token IN (")
	for n := 1; n <= tokenChunk; n++ {
		if n > 1 {
			ins.WriteString(", ")
			del.WriteString(", ")
		}
		fmt.Fprintf(&ins, "(?1, ?2, ?%d)", n+2)
		fmt.Fprintf(&del, "?%d", n+2)
		insertTokenSQL[n] = ins.String()
		deleteTokenSQL[n] = del.String() + ")"
	}
}

// SetMeta implements store.Writer.
func (w *writer) SetMeta(key string, value []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	if _, err := w.db.exec(w.ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, blob(value)); err != nil {
		return fmt.Errorf("sqlite: set meta: %w", err)
	}
	return nil
}

// CreateMeta implements store.Writer.
func (w *writer) CreateMeta(key string, value []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	res, err := w.db.exec(w.ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, blob(value))
	if err != nil {
		return fmt.Errorf("sqlite: create meta: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: create meta: %w", err)
	}
	if n == 0 {
		return store.ErrExists
	}
	return nil
}

// DeleteMeta implements store.Writer.
func (w *writer) DeleteMeta(key string) error {
	if err := w.check(); err != nil {
		return err
	}
	if _, err := w.db.exec(w.ctx, `DELETE FROM meta WHERE key = ?`, key); err != nil {
		return fmt.Errorf("sqlite: delete meta: %w", err)
	}
	return nil
}

// AppendAudit implements store.Writer. The index is the log's size at the
// time of the append; a rolled-back fn gives its indexes back, so indexes
// stay dense in commit order. The size is read once per fn: a batch of
// leaves costs one plain INSERT each.
func (w *writer) AppendAudit(leaf []byte) (int64, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	if !w.haveNext {
		if err := w.db.queryRow(w.ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit`).Scan(&w.nextAudit); err != nil {
			return 0, fmt.Errorf("sqlite: append audit: %w", err)
		}
		w.haveNext = true
	}
	idx := w.nextAudit
	if _, err := w.db.exec(w.ctx, `INSERT INTO audit (idx, leaf) VALUES (?, ?)`, idx, blob(store.PackLeaf(leaf))); err != nil {
		return 0, fmt.Errorf("sqlite: append audit: %w", err)
	}
	w.nextAudit++
	return idx, nil
}
