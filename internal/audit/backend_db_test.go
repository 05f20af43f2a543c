package audit

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// TestMain stops the throwaway PostgreSQL server TestBackend may start.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// sqliteDB is a SQLite data directory, tampered with through its file.
func sqliteDB(t *testing.T) realDB {
	dir := t.TempDir()
	return realDB{
		open: func(t *testing.T) store.Backend {
			t.Helper()
			st, err := sqlite.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		tamper: func(t *testing.T) tamperer {
			t.Helper()
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
			if err != nil {
				t.Fatal(err)
			}
			return sqliteTamper{db}
		},
	}
}

type sqliteTamper struct{ db *sql.DB }

func (s sqliteTamper) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := s.db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func (s sqliteTamper) restore(t *testing.T, leaves [][]byte) {
	t.Helper()
	tx, err := s.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM audit`); err != nil {
		t.Fatal(err)
	}
	for i, leaf := range leaves {
		if _, err := tx.Exec(`INSERT INTO audit (idx, leaf) VALUES (?, ?)`, i, leaf); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (s sqliteTamper) close() { s.db.Close() }

// postgresDB is a new schema in pgtest's server (it skips without one and
// fails when CI=true). Restart closes the Backend and opens a new one on
// the same DSN. That DSN is pgtest's administrative role with search_path
// set to the schema, and tampering connects with it too: the runtime role
// of a deployment may not UPDATE or DELETE audit rows (RuntimeGrants), but
// the schema's owner or a superuser can, and Verify must catch them.
func postgresDB(t *testing.T) realDB {
	dsn := pgtest.DSN(t)
	return realDB{
		open: func(t *testing.T) store.Backend {
			t.Helper()
			st, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		tamper: func(t *testing.T) tamperer {
			t.Helper()
			c, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return pgTamper{c}
		},
	}
}

type pgTamper struct{ c *pgx.Conn }

// exec numbers the ? placeholders as PostgreSQL's $1, $2, ...
func (p pgTamper) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	if _, err := p.c.Exec(context.Background(), b.String(), args...); err != nil {
		t.Fatal(err)
	}
}

func (p pgTamper) restore(t *testing.T, leaves [][]byte) {
	t.Helper()
	ctx := context.Background()
	tx, err := p.c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM audit`); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, len(leaves))
	for i, leaf := range leaves {
		rows[i] = []any{int64(i), leaf}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit"}, []string{"idx", "leaf"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func (p pgTamper) close() { p.c.Close(context.Background()) }
