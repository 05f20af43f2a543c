package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite" // the source format: the embedded store's file

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// copiedSQLite and copiedPostgres are the schema versions of the source
// and the target whose tables migrateStore copies. A new migration on
// either side must teach the copy its tables before these move. SQLite's
// schema 2 added tokset, derived from idx, which PostgreSQL does not keep:
// it is not copied; schema 3 changed only idx's key.
const (
	copiedSQLite   = 3
	copiedPostgres = 1
)

// storeTables are the tables copied, in order. audit_head and the
// versions sequence are set from them afterwards.
var storeTables = []string{"versions", "current", "idx", "meta", "audit"}

// migrateStore moves the embedded store of dir to the PostgreSQL database
// dsn, as stored: sealed bodies, blind tokens, wrapped keys and audit
// leaves are copied byte for byte and nothing is decrypted on the way, so
// the directory's key (file or provider) stays the key. The directory is
// locked for the whole run (no server may hold it) and the source is read
// in one snapshot. The copy is one PostgreSQL transaction; it is then
// verified on the target (per-table counts, audit tree size and root under
// the directory's checkpoint key, every version decrypted and
// authenticated). Only then is DIR/store.json pointed at PostgreSQL. On any
// failure after the copy committed, the target's tables are emptied again
// and the directory keeps using its embedded store.
func migrateStore(ctx context.Context, dir, dsn string, stdout, stderr io.Writer) error {
	if !isDataDir(dir) {
		return fail(exitUsage, dir+" is not a phivault data directory", "--from takes the data directory of an embedded installation")
	}
	if c, err := readStoreConfig(dir); err != nil {
		return err
	} else if c.Backend != "sqlite" {
		return fail(exitUsage, dir+" already uses a PostgreSQL store", "nothing to move; 'phivault migrate --db URL' migrates its schema")
	}
	if _, ok := withoutPassword(dsn); !ok {
		return fail(exitUsage, "--to takes a PostgreSQL connection string", "e.g. --to postgres://phivault_owner@db.example.org/phivault?sslmode=verify-full")
	}
	src, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a running server holds "+dir+"; the move reads the directory offline",
			"stop the server (SIGTERM), run the migration, then start it on PostgreSQL")
	}
	if err != nil {
		return err
	}
	defer src.close()
	verifier, srcAudit, err := verifySourceAudit(ctx, src)
	if err != nil {
		return err
	}

	pool, err := connectPG(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := targetEmpty(ctx, pool); err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		if errors.Is(err, postgres.ErrSchemaBehind) {
			return fail(exitFail, "this role may not create phivault's tables in the target", "connect --to as the schema owner; nodes then run as the runtime role (docs/scaling.md)")
		}
		return fail(exitFail, "cannot create the schema in the target: "+pgErrLine(err), "")
	}
	if v, _, err := postgres.SchemaVersion(ctx, pool); err != nil || v != copiedPostgres {
		return fail(exitFail, fmt.Sprintf("the target's schema is version %d; this phivault copies into version %d", v, copiedPostgres), "use the phivault release that matches the target")
	}

	start := time.Now()
	counts, err := copyStore(ctx, dir, pool)
	if err != nil {
		return fail(exitFail, "the copy failed and was rolled back, the target is empty: "+pgErrLine(err), "fix the cause and run the migration again")
	}
	fmt.Fprintf(stdout, "copied in %s: %s\n", time.Since(start).Round(time.Millisecond), formatCounts(counts))
	start = time.Now()
	err = verifyTarget(ctx, src, dsn, pool, counts, verifier, srcAudit, stdout)
	if err != nil {
		if cerr := emptyTarget(ctx, pool); cerr != nil {
			return fail(exitFail, "verification failed ("+err.Error()+") and emptying the target failed too: "+pgErrLine(cerr),
				"the target is NOT usable: drop its schema; "+dir+" still uses its embedded store")
		}
		return fail(exitFail, "verification failed, the target was emptied: "+err.Error(), dir+" still uses its embedded store; report the failure")
	}
	fmt.Fprintf(stdout, "verified in %s\n", time.Since(start).Round(time.Millisecond))
	if err := writeStoreConfig(dir, dsn); err != nil {
		return fail(exitFail, "the store was moved and verified, but "+filepath.Join(dir, storeFileName)+" could not be written: "+err.Error(),
			"write it by hand: {\"backend\": \"postgres\", \"dsn\": \""+redactDSN(dsn)+"\"}")
	}
	fmt.Fprintf(stdout, "OK: %s now uses %s\n", dir, redactDSN(dsn))
	fmt.Fprintf(stdout, "the embedded store (%s) is kept, unchanged, for rollback; serve with: phivault serve --data %s (password in PHIVAULT_DB or PGPASSWORD)\n",
		sqlite.FileName, dir)
	return nil
}

// verifySourceAudit verifies the source's audit log under the directory's
// checkpoint key; a log that does not verify is not moved.
func verifySourceAudit(ctx context.Context, n *node) (note.Verifier, *audit.Report, error) {
	_, vkey, err := n.auditSigner(ctx)
	if err != nil {
		return nil, nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fail(exitFail, "the directory's audit verifier key is not valid", "run 'phivault audit verify --data DIR'")
	}
	var rep *audit.Report
	err = n.db.View(ctx, func(r store.Reader) (err error) {
		rep, err = audit.Verify(ctx, r, verifier)
		return err
	})
	if err != nil {
		return nil, nil, fail(exitFail, "cannot read the source's audit log: "+err.Error(), "")
	}
	if !rep.OK() {
		return nil, nil, fail(exitFail, "the source's audit log fails verification: "+rep.Err().Error(), "run 'phivault audit verify --data DIR' and resolve it before moving")
	}
	return verifier, rep, nil
}

// targetEmpty refuses a target whose phivault tables hold any row.
func targetEmpty(ctx context.Context, pool *pgxpool.Pool) error {
	for _, t := range storeTables {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t).Scan(&exists); err != nil {
			return fail(exitFail, "cannot inspect the target: "+pgErrLine(err), "does the role have USAGE on the schema named by search_path?")
		}
		if !exists {
			continue
		}
		var rows bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&rows); err != nil {
			return fail(exitFail, "cannot inspect the target: "+pgErrLine(err), "")
		}
		if rows {
			return fail(exitUsage, "the target already holds a phivault store (table "+t+" is not empty); nothing was written",
				"migrate into a new, empty database or schema (search_path selects the schema)")
		}
	}
	return nil
}

// copyStore copies every table of the SQLite file in dir, read in one
// read transaction (one snapshot), into the target in one transaction
// with COPY, streaming (batched by the driver, never all in memory). It
// returns the source snapshot's row count per table.
func copyStore(ctx context.Context, dir string, pool *pgxpool.Pool) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	stx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer stx.Rollback()
	var v int
	if err := stx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		return nil, fmt.Errorf("source schema_version: %w", err)
	}
	if v != copiedSQLite {
		return nil, fmt.Errorf("the source's schema is version %d; this phivault copies version %d", v, copiedSQLite)
	}

	ttx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer ttx.Rollback(context.Background())
	counts := map[string]int64{}
	for _, c := range copySpecs {
		rows, err := stx.QueryContext(ctx, c.query)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", c.table, err)
		}
		src := &sqlRows{rows: rows, scan: c.scan}
		n, err := ttx.CopyFrom(ctx, pgx.Identifier{c.table}, c.columns, src)
		rows.Close()
		if err == nil {
			err = src.err
		}
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", c.table, err)
		}
		var want int64
		if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM `+c.table).Scan(&want); err != nil {
			return nil, fmt.Errorf("count %s: %w", c.table, err)
		}
		if n != want {
			return nil, fmt.Errorf("copied %d rows of %s, the source holds %d", n, c.table, want)
		}
		counts[c.table] = want
	}
	if _, err := ttx.Exec(ctx, `SELECT setval('versions_seq', COALESCE(max(seq), 1), max(seq) IS NOT NULL) FROM versions`); err != nil {
		return nil, fmt.Errorf("versions_seq: %w", err)
	}
	if _, err := ttx.Exec(ctx, `UPDATE audit_head SET size = $1`, counts["audit"]); err != nil {
		return nil, fmt.Errorf("audit_head: %w", err)
	}
	if err := ttx.Commit(ctx); err != nil {
		return nil, err
	}
	return counts, nil
}

// copySpec reads one SQLite table and converts its rows to the PostgreSQL
// column types (unix microseconds to timestamptz, 0/1 to boolean, text
// metadata keys to bytea).
type copySpec struct {
	table   string
	query   string
	columns []string
	scan    func(*sql.Rows) ([]any, error)
}

var copySpecs = []copySpec{
	{"versions", `SELECT seq, rtype, rid, vid, updated, deleted, body FROM versions ORDER BY seq`,
		[]string{"seq", "rtype", "rid", "vid", "updated", "deleted", "body"},
		func(r *sql.Rows) ([]any, error) {
			var seq, vid, updated, deleted int64
			var typ, id string
			var body []byte
			err := r.Scan(&seq, &typ, &id, &vid, &updated, &deleted, &body)
			return []any{seq, typ, id, vid, time.UnixMicro(updated).UTC(), deleted != 0, nonNil(body)}, err
		}},
	{"current", `SELECT rtype, rid, vid, seq, deleted FROM current`,
		[]string{"rtype", "rid", "vid", "seq", "deleted"},
		func(r *sql.Rows) ([]any, error) {
			var typ, id string
			var vid, seq, deleted int64
			err := r.Scan(&typ, &id, &vid, &seq, &deleted)
			return []any{typ, id, vid, seq, deleted != 0}, err
		}},
	{"idx", `SELECT token, rtype, rid FROM idx`,
		[]string{"token", "rtype", "rid"},
		func(r *sql.Rows) ([]any, error) {
			var tok []byte
			var typ, id string
			err := r.Scan(&tok, &typ, &id)
			return []any{nonNil(tok), typ, id}, err
		}},
	{"meta", `SELECT CAST(key AS BLOB), value FROM meta`,
		[]string{"key", "value"},
		func(r *sql.Rows) ([]any, error) {
			var k, v []byte
			err := r.Scan(&k, &v)
			return []any{nonNil(k), nonNil(v)}, err
		}},
	{"audit", `SELECT idx, leaf FROM audit ORDER BY idx`,
		[]string{"idx", "leaf"},
		func(r *sql.Rows) ([]any, error) {
			var i int64
			var leaf []byte
			err := r.Scan(&i, &leaf)
			return []any{i, nonNil(leaf)}, err
		}},
}

// nonNil keeps an empty blob an empty bytea, not NULL (the columns are
// NOT NULL; a delete marker's body is empty).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// sqlRows is a pgx.CopyFromSource over database/sql rows.
type sqlRows struct {
	rows *sql.Rows
	scan func(*sql.Rows) ([]any, error)
	vals []any
	err  error
}

func (s *sqlRows) Next() bool {
	if s.err != nil || !s.rows.Next() {
		if s.err == nil {
			s.err = s.rows.Err()
		}
		return false
	}
	s.vals, s.err = s.scan(s.rows)
	return s.err == nil
}

func (s *sqlRows) Values() ([]any, error) { return s.vals, s.err }
func (s *sqlRows) Err() error             { return s.err }

func formatCounts(c map[string]int64) string {
	parts := make([]string, 0, len(storeTables))
	for _, t := range storeTables {
		parts = append(parts, fmt.Sprintf("%s %d", t, c[t]))
	}
	return strings.Join(parts, ", ")
}

// emptyTarget removes what the copy wrote (as the owner), leaving the
// schema at its version with empty tables.
func emptyTarget(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(storeTables, ", ")); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET size = 0`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT setval('versions_seq', 1, false)`); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
