package main

// The logical dump a snapshot holds instead of a page copy of the SQLite
// file (docs/backup.md, "What a snapshot holds"). A page copy changes in
// scattered pages after a small change (blind-index B-tree updates), so a
// 1% change cost half the bytes of the next backup. The dump is ordered so
// that a change costs about its own size:
//
//	db/versions  every version, by seq (append-only: updates append)
//	db/audit     every audit leaf, by index (append-only)
//	db/meta      every metadata key and value, by key (small)
//	db/index     per resource, in (type, id) order: how many blind tokens
//	             it has and a hash of them (8 bytes each, updated in place)
//	db/facts.json schema version, row counts, digest of the current table
//
// Rows are copied as stored: sealed bodies, wrapped keys, blind tokens,
// audit leaves. Nothing is decrypted and no data key is needed to back up.
// The derived tables are rebuilt on restore: current from versions (pure
// SQL, checked against the digest), the blind index by re-indexing every
// current version through records and the search engine in memory
// (backup_reindex.go), checked resource by resource against db/index, and
// the per-version token sets (tokset) from the index.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/store/sqlite"
)

const (
	dumpFormat = "phivault-dump/1"
	dumpDir    = "db" // in the snapshot, beside kek.json and tls/
	factsName  = "facts.json"
)

// dumpTables are the tables of the SQLite schema and how the dump covers
// each. A table the dump does not know fails the backup: a new table must
// be given an order here (and a way back in loadDump) before it can be
// backed up, so nothing is silently left out.
var dumpTables = map[string]string{
	"schema_version": "facts.json",
	"versions":       "dumped by seq",
	"audit":          "dumped by idx",
	"meta":           "dumped by key",
	"current":        "rebuilt from versions",
	"idx":            "rebuilt by re-indexing; checked against db/index",
	"tokset":         "rebuilt from idx",
}

// sameDump lists the pairs of SQLite schema versions {snapshot's, this
// binary's} whose dumps hold the same tables, so that one loads into the
// other: schema 2 added only tokset, which a restore rebuilds, and schema
// 3 only changed idx's key.
var sameDump = map[[2]int]bool{{1, 2}: true, {1, 3}: true, {2, 3}: true}

// dumpFacts is db/facts.json.
type dumpFacts struct {
	Format  string           `json:"format"`
	Schema  int              `json:"schema"`  // schema_version of the dumped store
	Rows    map[string]int64 `json:"rows"`    // per table
	Current []byte           `json:"current"` // SHA-256 of the current table, see currentDigest
}

// dumpWriter writes one dump file: a header line, then records.
type dumpWriter struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

func newDumpWriter(path, table string) (*dumpWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "%s %s\n", dumpFormat, table)
	return &dumpWriter{f: f, w: w}, nil
}

func (d *dumpWriter) uint(v uint64)  { d.buf = binary.AppendUvarint(d.buf, v) }
func (d *dumpWriter) int(v int64)    { d.buf = binary.AppendVarint(d.buf, v) }
func (d *dumpWriter) bytes(b []byte) { d.uint(uint64(len(b))); d.buf = append(d.buf, b...) }
func (d *dumpWriter) raw(b []byte)   { d.buf = append(d.buf, b...) }

// end writes the record built since the last end.
func (d *dumpWriter) end() error {
	_, err := d.w.Write(d.buf)
	d.buf = d.buf[:0]
	return err
}

func (d *dumpWriter) close() error {
	err := d.w.Flush()
	if serr := d.f.Sync(); err == nil {
		err = serr
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// currentRow is one row of the current table, hashed in key order.
type currentRow struct {
	typ, id  string
	vid, seq int64
	deleted  bool
}

// writeCurrent adds r to the digest of the current table.
func writeCurrent(h io.Writer, r currentRow) {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(r.typ)))
	b = append(b, r.typ...)
	b = binary.AppendUvarint(b, uint64(len(r.id)))
	b = append(b, r.id...)
	b = binary.AppendVarint(b, r.vid)
	b = binary.AppendVarint(b, r.seq)
	if r.deleted {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	h.Write(b)
}

// tokenDigest is the first 8 bytes of SHA-256 over a resource's tokens in
// ascending byte order, each length-prefixed: enough to tell a rebuilt
// index from the backed-up one, resource by resource.
func tokenDigest(tokens [][]byte) [8]byte {
	slices.SortFunc(tokens, bytes.Compare)
	h := sha256.New()
	var n []byte
	for _, t := range tokens {
		n = binary.AppendUvarint(n[:0], uint64(len(t)))
		h.Write(n)
		h.Write(t)
	}
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// dumpStore writes the dump of the database at dbPath into out (which must
// exist and be empty) from one read transaction: one point in time, and
// writers (WAL mode) are not paused. It returns the counts a restore must
// reproduce.
func dumpStore(ctx context.Context, dbPath, out string) (map[string]int64, error) {
	if _, err := os.Stat(dbPath); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, err
	}
	defer c.ExecContext(context.Background(), "ROLLBACK")
	facts := dumpFacts{Format: dumpFormat, Rows: map[string]int64{}}
	if err := checkTables(ctx, c); err != nil {
		return nil, err
	}
	if err := c.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&facts.Schema); err != nil {
		return nil, fmt.Errorf("schema version: %w", err)
	}
	return dumpContent(ctx, c, out, facts, sqliteIndex)
}

// micros scans a version's update time as the dump records it, unix
// microseconds: an integer (SQLite) or a timestamp (PostgreSQL, which
// keeps microseconds too).
type micros int64

func (m *micros) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*m = micros(v)
	case time.Time:
		*m = micros(v.UnixMicro())
	default:
		return fmt.Errorf("update time of type %T", src)
	}
	return nil
}

// dumpContent writes the dump files of the store c reads, in the
// transaction c has open, and db/facts.json with facts (whose format and
// schema the caller set); it returns the counts a restore must reproduce.
// index is how the backend lists each resource's index tokens.
// Its queries hold on both backends: booleans scan from SQLite's 0/1 and
// PostgreSQL's boolean, metadata keys from TEXT and bytea, update times
// through micros; types, ids and keys sort bytewise on both (BINARY,
// COLLATE "C" and bytea).
func dumpContent(ctx context.Context, c *sql.Conn, out string, facts dumpFacts, index indexQuery) (map[string]int64, error) {
	type table struct {
		name, query string
		row         func(rows *sql.Rows, w *dumpWriter) error
	}
	tables := []table{
		{"versions", "SELECT seq, rtype, rid, vid, updated, deleted, body FROM versions ORDER BY seq", func(rows *sql.Rows, w *dumpWriter) error {
			var seq, vid int64
			var updated micros
			var typ, id string
			var deleted bool
			var body []byte
			if err := rows.Scan(&seq, &typ, &id, &vid, &updated, &deleted, &body); err != nil {
				return err
			}
			w.uint(uint64(seq))
			w.bytes([]byte(typ))
			w.bytes([]byte(id))
			w.uint(uint64(vid))
			w.int(int64(updated))
			w.bytes(boolByte(deleted))
			w.bytes(body)
			return nil
		}},
		{"audit", "SELECT idx, leaf FROM audit ORDER BY idx", func(rows *sql.Rows, w *dumpWriter) error {
			var idx int64
			var leaf []byte
			if err := rows.Scan(&idx, &leaf); err != nil {
				return err
			}
			w.uint(uint64(idx))
			w.bytes(leaf)
			return nil
		}},
		{"meta", "SELECT key, value FROM meta ORDER BY key", func(rows *sql.Rows, w *dumpWriter) error {
			var key, value []byte
			if err := rows.Scan(&key, &value); err != nil {
				return err
			}
			w.bytes(key)
			w.bytes(value)
			return nil
		}},
	}
	for _, t := range tables {
		n, err := dumpQuery(ctx, c, filepath.Join(out, t.name), t.name, t.query, t.row)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", t.name, err)
		}
		facts.Rows[t.name] = n
	}
	var err error
	if facts.Current, err = dumpIndex(ctx, c, index, filepath.Join(out, "index"), facts.Rows); err != nil {
		return nil, fmt.Errorf("dump index: %w", err)
	}
	counts := map[string]int64{"versions": facts.Rows["versions"], "audit": facts.Rows["audit"], "meta": facts.Rows["meta"], "tokens": facts.Rows["idx"]}
	for name, q := range map[string]string{
		"resources": "SELECT count(*) FROM current WHERE NOT deleted",
		"deleted":   "SELECT count(*) FROM current WHERE deleted",
	} {
		var n int64
		if err := c.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		counts[name] = n
	}
	b, err := json.Marshal(facts)
	if err != nil {
		return nil, err
	}
	if err := writeSynced(filepath.Join(out, factsName), b); err != nil {
		return nil, err
	}
	return counts, nil
}

// checkTables fails unless the database's tables are exactly dumpTables.
func checkTables(ctx context.Context, c *sql.Conn) error {
	return checkTableNames(ctx, c, dumpTables, "not a phivault SQLite store of this version",
		"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
}

// checkTableNames fails unless the table names query returns are exactly
// the keys of known; notOurs ends the message of a missing one.
func checkTableNames(ctx context.Context, c *sql.Conn, known map[string]string, notOurs, query string, args ...any) error {
	rows, err := c.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	seen := map[string]bool{}
	var unknown []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		seen[name] = true
		if _, ok := known[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(unknown) > 0 {
		return fmt.Errorf("the store has tables this backup format does not cover: %s", strings.Join(unknown, ", "))
	}
	for name := range known {
		if !seen[name] {
			return fmt.Errorf("the store has no table %s: %s", name, notOurs)
		}
	}
	return nil
}

func boolByte(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

// dumpQuery writes every row of query to path and returns how many.
func dumpQuery(ctx context.Context, c *sql.Conn, path, table, query string, row func(*sql.Rows, *dumpWriter) error) (int64, error) {
	w, err := newDumpWriter(path, table)
	if err != nil {
		return 0, err
	}
	rows, err := c.QueryContext(ctx, query)
	if err != nil {
		w.close()
		return 0, err
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		if err := row(rows, w); err != nil {
			w.close()
			return 0, err
		}
		if err := w.end(); err != nil {
			w.close()
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		w.close()
		return 0, err
	}
	return n, w.close()
}

// indexQuery lists every current resource, in (rtype, rid) order, with
// its index tokens: rtype, rid, vid, seq, deleted and a token column.
// With sets, one row per resource whose token column is its tokset value
// (NULL for none); without, one row per token, ordered by token (a NULL
// token for a resource without any).
type indexQuery struct {
	sql  string
	sets bool
}

// sqliteIndex reads SQLite's token sets: its idx is keyed by token alone.
var sqliteIndex = indexQuery{sets: true, sql: `SELECT c.rtype, c.rid, c.vid, c.seq, c.deleted, t.toks
	FROM current c LEFT JOIN tokset t ON t.seq = c.seq AND c.deleted = 0
	ORDER BY c.rtype, c.rid`}

// dumpIndex walks current in key order with each resource's tokens (q),
// writes db/index (token count and tokenDigest per row) and returns the
// digest of current. An index whose size is not the number of tokens so
// listed (e.g. rows of no current resource) fails the dump.
func dumpIndex(ctx context.Context, c *sql.Conn, q indexQuery, path string, rowsOut map[string]int64) ([]byte, error) {
	w, err := newDumpWriter(path, "index")
	if err != nil {
		return nil, err
	}
	rows, err := c.QueryContext(ctx, q.sql)
	if err != nil {
		w.close()
		return nil, err
	}
	defer rows.Close()
	h := sha256.New()
	var cur *currentRow
	var toks [][]byte
	var nCurrent, nTokens int64
	flush := func() error {
		if cur == nil {
			return nil
		}
		writeCurrent(h, *cur)
		d := tokenDigest(toks)
		w.uint(uint64(len(toks)))
		w.raw(d[:])
		nCurrent++
		nTokens += int64(len(toks))
		toks = toks[:0]
		return w.end()
	}
	for rows.Next() {
		var r currentRow
		var col []byte
		if err := rows.Scan(&r.typ, &r.id, &r.vid, &r.seq, &r.deleted, &col); err != nil {
			w.close()
			return nil, err
		}
		if cur == nil || cur.typ != r.typ || cur.id != r.id {
			if err := flush(); err != nil {
				w.close()
				return nil, err
			}
			cur = &r
		}
		switch {
		case q.sets:
			set, err := sqlite.DecodeTokset(col)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("%s/%s: %w", r.typ, r.id, err)
			}
			for _, tok := range set {
				toks = append(toks, tok)
			}
		case col != nil:
			toks = append(toks, col)
		}
	}
	if err := rows.Err(); err != nil {
		w.close()
		return nil, err
	}
	if err := flush(); err != nil {
		w.close()
		return nil, err
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	var all int64
	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM idx").Scan(&all); err != nil {
		return nil, err
	}
	if all != nTokens {
		return nil, fmt.Errorf("the index holds %d entries, the current resources %d", all, nTokens)
	}
	rowsOut["current"], rowsOut["idx"] = nCurrent, nTokens
	return h.Sum(nil), nil
}

// writeSynced creates path with b, fsynced.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
