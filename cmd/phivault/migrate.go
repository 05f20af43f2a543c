package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/phivault/phivault/internal/store/postgres"
)

// runMigrate has two forms:
//
//	phivault migrate --db postgres://...                    apply pending schema migrations
//	phivault migrate --from DATADIR --to postgres://...     move an embedded store to PostgreSQL
//
// The first runs as the schema owner (the runtime role may not change the
// schema) and prints the version before and after; with nothing pending
// it changes nothing. The second is in migrate_copy.go.
func runMigrate(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlags("migrate", "--db postgres://... | --from DATADIR --to postgres://...", stderr)
	db := fs.String("db", os.Getenv("PHIVAULT_DB"), "PostgreSQL database whose schema to migrate, as its owner (env PHIVAULT_DB)")
	from := fs.String("from", "", "data directory of an embedded (SQLite) installation to move to PostgreSQL")
	to := fs.String("to", "", "empty PostgreSQL database (or schema, via search_path) to move it to, connecting as the schema owner")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, "migrate takes no arguments", "phivault migrate --db URL, or phivault migrate --from DATADIR --to URL")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch {
	case *from != "" || *to != "":
		if *from == "" || *to == "" {
			return fail(exitUsage, "--from and --to go together", "phivault migrate --from DATADIR --to postgres://owner@host/db")
		}
		return migrateStore(ctx, *from, *to, stdout, stderr)
	case *db != "":
		return migrateSchema(ctx, *db, stdout)
	}
	return fail(exitUsage, "nothing to migrate", "phivault migrate --db URL (schema), or phivault migrate --from DATADIR --to URL (move a store)")
}

// connectPG connects to dsn and checks the server answers. Errors are
// one-line CLI errors that name the database without its password.
func connectPG(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	if _, ok := withoutPassword(dsn); !ok {
		return nil, fail(exitUsage, "not a PostgreSQL connection string", "e.g. postgres://phivault_owner@db.example.org/phivault?sslmode=verify-full")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, fail(exitUsage, "cannot parse the database connection string", "e.g. postgres://phivault_owner@db.example.org/phivault?sslmode=verify-full")
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, fail(exitFail, "cannot connect to "+redactDSN(dsn)+": "+pgErrLine(err),
			"is the server up and reachable, and do the user, database and password (PGPASSWORD or ~/.pgpass) match?")
	}
	return pool, nil
}

// pgErrLine is err on one line (connection errors can span several).
func pgErrLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// migrateSchema applies pending migrations to the schema dsn selects.
func migrateSchema(ctx context.Context, dsn string, stdout io.Writer) error {
	pool, err := connectPG(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	before, latest, err := postgres.SchemaVersion(ctx, pool)
	if err != nil {
		return fail(exitFail, "cannot read the schema version: "+pgErrLine(err), "does the role have USAGE on the schema named by search_path?")
	}
	if before > latest {
		return fail(exitFail, fmt.Sprintf("the database schema is version %d, newer than this phivault knows (%d)", before, latest), "run the phivault release that wrote it, or a newer one")
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		if errors.Is(err, postgres.ErrSchemaBehind) {
			return fail(exitFail, fmt.Sprintf("this role may not change the schema (version %d, this phivault needs %d)", before, latest),
				"run 'phivault migrate --db URL' connecting as the schema owner, not the runtime role (docs/scaling.md lists the grants)")
		}
		return fail(exitFail, "migration failed, the schema is unchanged: "+pgErrLine(err), "check the server log; the migration runs in one transaction")
	}
	after, _, err := postgres.SchemaVersion(ctx, pool)
	if err != nil {
		return fail(exitFail, "cannot read the schema version: "+pgErrLine(err), "")
	}
	if after == before {
		fmt.Fprintf(stdout, "schema version %d: up to date, nothing applied\n", after)
	} else {
		fmt.Fprintf(stdout, "schema version %d -> %d: applied %d migrations\n", before, after, after-before)
	}
	return nil
}
