package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SchemaVersion reports the schema version of the connection's current
// schema (0 when phivault never migrated it) and the version this binary
// migrates to. It only reads, so any role that may connect can call it.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (have, latest int, err error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, 0, fmt.Errorf("postgres: schema_version: %w", err)
	}
	if exists {
		if err := pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&have); err != nil {
			return 0, 0, fmt.Errorf("postgres: schema_version: %w", err)
		}
	}
	return have, len(migrations), nil
}
