package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are applied in order; migrations[i] brings the schema from
// version i to version i+1. Never edit an entry once released: append.
//
// Only type, id, version id, sequence numbers, timestamps and the caller's
// opaque blobs (sealed bodies, blind tokens, metadata values, audit leaves)
// are stored. Resource types and ids are FHIR ids (ASCII) and compare
// bytewise (COLLATE "C"), so Match orders ids like the embedded store
// whatever the database's default collation. Metadata keys may hold any
// bytes, so they are bytea.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE SEQUENCE versions_seq AS bigint;

CREATE TABLE versions (
	seq     bigint      PRIMARY KEY,  -- store-wide change sequence (versions_seq)
	rtype   text        COLLATE "C" NOT NULL,
	rid     text        COLLATE "C" NOT NULL,
	vid     bigint      NOT NULL,
	updated timestamptz NOT NULL,
	deleted boolean     NOT NULL,
	body    bytea       NOT NULL,
	UNIQUE (rtype, rid, vid)
);
ALTER SEQUENCE versions_seq OWNED BY versions.seq;
CREATE INDEX versions_type_seq ON versions (rtype, seq);

-- current points at each resource's latest version. Its row is the lock
-- that makes Put's version check race-free across nodes.
CREATE TABLE current (
	rtype   text    COLLATE "C" NOT NULL,
	rid     text    COLLATE "C" NOT NULL,
	vid     bigint  NOT NULL,
	seq     bigint  NOT NULL,
	deleted boolean NOT NULL,
	PRIMARY KEY (rtype, rid)
);

-- idx holds the blind tokens of current, non-deleted versions.
CREATE TABLE idx (
	token bytea NOT NULL,
	rtype text  COLLATE "C" NOT NULL,
	rid   text  COLLATE "C" NOT NULL,
	PRIMARY KEY (rtype, rid, token)
);
CREATE INDEX idx_token ON idx (token, rtype, rid);

CREATE TABLE meta (
	key   bytea PRIMARY KEY,
	value bytea NOT NULL
);

-- audit_head is the audit log's size: the one row every writing
-- transaction locks first, so audit indexes are dense and in commit order
-- across all nodes.
CREATE TABLE audit_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	size bigint  NOT NULL
);
INSERT INTO audit_head (size) VALUES (0);

-- audit leaves; idx is 0-based and dense. The runtime role may only
-- SELECT and INSERT here.
CREATE TABLE audit (
	idx  bigint PRIMARY KEY,
	leaf bytea  NOT NULL
);
`,
}

// RuntimeGrants returns the statements, to be run by the schema owner
// after Migrate, that give role the least privilege a phivault node needs:
//
//	GRANT USAGE ON SCHEMA <current schema> TO role;
//	GRANT SELECT ON schema_version TO role;
//	GRANT SELECT, INSERT, UPDATE, DELETE ON current, idx, meta TO role;
//	GRANT SELECT, INSERT ON versions TO role;          -- history is append-only
//	GRANT USAGE ON SEQUENCE versions_seq TO role;
//	GRANT SELECT, UPDATE ON audit_head TO role;
//	GRANT SELECT, INSERT ON audit TO role;             -- no UPDATE, DELETE, TRUNCATE
//
// The runtime role owns nothing, so it can neither drop, alter nor
// truncate a table, and it cannot change or remove an audit leaf. It can
// move audit_head, but a leaf index can then only collide with an existing
// leaf (the insert fails) or leave a gap, which the Merkle log's
// verification reports. Schema changes (Migrate) need the owner role.
func RuntimeGrants(schema, role string) []string {
	r := pgx.Identifier{role}.Sanitize()
	return []string{
		"GRANT USAGE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + r,
		"GRANT SELECT ON schema_version TO " + r,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON current, idx, meta TO " + r,
		"GRANT SELECT, INSERT ON versions TO " + r,
		"GRANT USAGE ON SEQUENCE versions_seq TO " + r,
		"GRANT SELECT, UPDATE ON audit_head TO " + r,
		"GRANT SELECT, INSERT ON audit TO " + r,
	}
}

// errNewerSchema reports a database written by a newer phivault.
var errNewerSchema = errors.New("postgres: database schema is newer than this binary")

// ErrSchemaBehind: the schema needs migrations that the connecting role may
// not apply; run Migrate (phivault migrate) as the schema owner.
var ErrSchemaBehind = errors.New("postgres: database schema needs migrating by its owner")

// migrateLock is the advisory lock key that serializes migrations between
// nodes starting together.
const migrateLock = 0x7068_6976_6d69_67 // "phivmig"

// Migrate brings the schema in the connection's current schema (the first
// of search_path) to the latest version in one transaction, so a failure
// leaves the previous version intact. Nodes starting together take turns
// under an advisory lock. When nothing is pending it only reads, so a
// runtime role without DDL rights can call it.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.Background())
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: schema_version: %w", err)
	}
	v := 0
	if exists {
		if err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("postgres: schema_version: %w", err)
		}
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: version %d, known %d", errNewerSchema, v, len(migrations))
	}
	if v == len(migrations) {
		return tx.Commit(ctx)
	}
	behind := func(err error) error {
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42501" {
			return fmt.Errorf("%w: version %d, need %d: %v", ErrSchemaBehind, v, len(migrations), err)
		}
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE TABLE schema_version (version integer NOT NULL);
			INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return behind(fmt.Errorf("postgres: schema_version: %w", err))
		}
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return behind(fmt.Errorf("postgres: migration %d: %w", i+1, err))
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, len(migrations)); err != nil {
		return fmt.Errorf("postgres: schema_version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit migration: %w", err)
	}
	return nil
}
