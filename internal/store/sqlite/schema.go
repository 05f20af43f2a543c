package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migrations are applied in order; migrations[i] brings the schema from
// version i to version i+1. Never edit an entry once released: append.
//
// Only type, id, version id, sequence numbers, timestamps (unix
// microseconds, UTC) and the caller's opaque blobs (sealed bodies, blind
// tokens, metadata values, audit leaves) are stored.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE versions (
	seq     INTEGER PRIMARY KEY,      -- store-wide change sequence
	rtype   TEXT    NOT NULL,
	rid     TEXT    NOT NULL,
	vid     INTEGER NOT NULL,
	updated INTEGER NOT NULL,         -- unix microseconds, UTC
	deleted INTEGER NOT NULL,
	body    BLOB    NOT NULL,
	UNIQUE (rtype, rid, vid)
);
CREATE INDEX versions_type_seq ON versions (rtype, seq);

-- current points at each resource's latest version.
CREATE TABLE current (
	rtype   TEXT    NOT NULL,
	rid     TEXT    NOT NULL,
	vid     INTEGER NOT NULL,
	seq     INTEGER NOT NULL REFERENCES versions (seq),
	deleted INTEGER NOT NULL,
	PRIMARY KEY (rtype, rid)
) WITHOUT ROWID;

-- idx holds the blind tokens of current, non-deleted versions. The table
-- is keyed for replacing one resource's tokens; idx_token serves lookups.
CREATE TABLE idx (
	rtype TEXT NOT NULL,
	rid   TEXT NOT NULL,
	token BLOB NOT NULL,
	PRIMARY KEY (rtype, rid, token)
) WITHOUT ROWID;
CREATE INDEX idx_token ON idx (token, rtype, rid);

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;

-- audit leaves; idx is 0-based and dense.
CREATE TABLE audit (
	idx  INTEGER PRIMARY KEY,
	leaf BLOB NOT NULL
);
`,
	// 2: tokset, each current version's tokens in one row (see tokens.go).
	`
CREATE TABLE tokset (
	seq  INTEGER PRIMARY KEY REFERENCES versions (seq),
	toks BLOB    NOT NULL
);
` + FillTokset + `;
`,
	// 3: idx keyed by token alone. Lookups go by token; a resource's own
	// rows are told by its tokset row, so the copy of every row in
	// resource order goes: half the index writes, a third of the file.
	`
CREATE TABLE idx_by_token (
	token BLOB NOT NULL,
	rtype TEXT NOT NULL,
	rid   TEXT NOT NULL,
	PRIMARY KEY (token, rtype, rid)
) WITHOUT ROWID;
INSERT INTO idx_by_token (token, rtype, rid)
	SELECT token, rtype, rid FROM idx ORDER BY token, rtype, rid;
DROP TABLE idx;
ALTER TABLE idx_by_token RENAME TO idx;
`,
}

// errNewerSchema reports a database written by a newer phivault.
var errNewerSchema = errors.New("sqlite: database schema is newer than this binary")

// migrate brings the schema to the latest version inside one immediate
// transaction, so a crash mid-way leaves the previous version intact.
func migrate(ctx context.Context, c *sql.Conn) (err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: schema_version: %w", err)
	}
	var v int
	switch err := c.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := c.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("sqlite: schema_version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("sqlite: schema_version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: version %d, known %d", errNewerSchema, v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := c.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
	}
	if _, err := c.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return fmt.Errorf("sqlite: schema_version: %w", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit migration: %w", err)
	}
	return nil
}
