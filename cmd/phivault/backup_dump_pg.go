package main

// The dump of a PostgreSQL store: the same files, in the same format and
// byte for byte the same records as dumpStore writes for the same logical
// content (backup_dump.go), so verify, restore, drills and prune do not
// know which backend a snapshot came from. A restore always builds an
// embedded (SQLite) store; 'phivault migrate --from DIR --to URL' moves it
// back onto PostgreSQL.
//
// The two schemas store the same rows with different column types, which
// the dump converts to the SQLite forms it records:
//
//	versions.updated  timestamptz -> unix microseconds (both keep µs)
//	deleted           boolean     -> 0/1
//	meta.key          bytea       -> the same bytes (TEXT in SQLite)
//
// Types and ids are COLLATE "C" and metadata keys bytea, so every ORDER BY
// is bytewise, as SQLite's BINARY collation is.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgDumpTables are the tables of the PostgreSQL schema and how the dump
// covers each: dumpTables plus audit_head. As with dumpTables, a table the
// dump does not know fails the backup, so a new table in a PostgreSQL
// migration cannot be silently left out of snapshots.
var pgDumpTables = map[string]string{
	"schema_version": "facts.json, as the SQLite schema version (pgDumpSchema)",
	"versions":       "dumped by seq",
	"audit":          "dumped by idx",
	"meta":           "dumped by key",
	"current":        "rebuilt from versions",
	"idx":            "rebuilt by re-indexing; checked against db/index",
	"audit_head":     "the audit log's size: checked equal to the dumped leaves; migrate --from sets it again",
}

// pgDumpSchema maps a PostgreSQL schema version to the SQLite schema
// version whose dump it produces. The two backends number their
// migrations separately; facts.json records the SQLite number because
// loadDump compares it with the schema of the SQLite store it builds, so
// snapshots of either backend load with the same check. A PostgreSQL
// migration that changes what is dumped must add its entry here (and,
// when the SQLite schema moves too, the pair that matches). SQLite's
// schema 3 changed only how idx is keyed, not what is dumped.
var pgDumpSchema = map[int]int{1: 3}

// storeDSN is the connection string of a PostgreSQL data directory, as
// openStore uses it: PHIVAULT_DB when set (it may hold the password),
// else the DSN in DIR/store.json.
func storeDSN(c storeConfig) string {
	if env := os.Getenv("PHIVAULT_DB"); env != "" {
		return env
	}
	return c.DSN
}

// dumpStorePG writes the dump of the PostgreSQL store dsn selects into out
// (which must exist and be empty) from one REPEATABLE READ, READ ONLY
// transaction: every table is read at one point in time, and writers are
// not paused. It returns the counts a restore must reproduce, as
// dumpStore does.
func dumpStorePG(ctx context.Context, dsn, out string) (map[string]int64, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("cannot parse the database connection string")
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %s", pgErrLine(err))
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, err
	}
	defer c.ExecContext(context.Background(), "ROLLBACK")
	// The snapshot is taken by the first query: from here on every read
	// sees the same committed state.
	if err := checkTablesPG(ctx, c); err != nil {
		return nil, err
	}
	facts := dumpFacts{Format: dumpFormat, Rows: map[string]int64{}}
	var pgSchema int
	if err := c.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&pgSchema); err != nil {
		return nil, fmt.Errorf("schema version: %w", err)
	}
	var ok bool
	if facts.Schema, ok = pgDumpSchema[pgSchema]; !ok {
		return nil, fmt.Errorf("the PostgreSQL schema is version %d, which this phivault cannot back up", pgSchema)
	}
	counts, err := dumpContent(ctx, c, out, facts, pgIndex)
	if err != nil {
		return nil, err
	}
	var head int64
	if err := c.QueryRowContext(ctx, "SELECT size FROM audit_head").Scan(&head); err != nil {
		return nil, fmt.Errorf("audit_head: %w", err)
	}
	if head != counts["audit"] {
		return nil, fmt.Errorf("audit_head says %d leaves, the audit table holds %d", head, counts["audit"])
	}
	return counts, nil
}

// checkTablesPG fails unless the tables of the connection's current schema
// (the first of search_path, where phivault's tables are) are exactly
// pgDumpTables.
func checkTablesPG(ctx context.Context, c *sql.Conn) error {
	var schema sql.NullString
	if err := c.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return err
	}
	if !schema.Valid {
		return errors.New("no schema of search_path exists that this role may use (USAGE)")
	}
	return checkTableNames(ctx, c, pgDumpTables, "not a phivault PostgreSQL store of this version (check search_path)",
		`SELECT relname FROM pg_class
		WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
		AND relkind IN ('r', 'p', 'f') ORDER BY relname`, schema.String)
}

// pgIndex reads PostgreSQL's idx, which is keyed by resource.
var pgIndex = indexQuery{sql: `SELECT c.rtype, c.rid, c.vid, c.seq, c.deleted, i.token
	FROM current c LEFT JOIN idx i ON i.rtype = c.rtype AND i.rid = c.rid
	ORDER BY c.rtype, c.rid, i.token`}
