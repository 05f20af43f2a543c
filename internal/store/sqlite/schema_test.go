package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// TestIndexByTokenMigration opens a store written at schema version 2,
// whose idx is keyed by resource with a second B-tree by token: the
// migration keeps every row in one B-tree keyed by token, search answers
// as before, and an update on the migrated store replaces its tokens.
func TestIndexByTokenMigration(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		migrations[0], migrations[1],
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`,
		`INSERT INTO schema_version (version) VALUES (2)`,
		`INSERT INTO versions (seq, rtype, rid, vid, updated, deleted, body) VALUES
			(1, 'Patient', 'a', 1, 0, 0, x'01'), (2, 'Patient', 'b', 1, 0, 0, x'02'),
			(3, 'Patient', 'c', 1, 0, 0, x'03'), (4, 'Patient', 'c', 2, 0, 1, x'')`,
		`INSERT INTO current (rtype, rid, vid, seq, deleted) VALUES
			('Patient', 'a', 1, 1, 0), ('Patient', 'b', 1, 2, 0), ('Patient', 'c', 2, 4, 1)`,
		`INSERT INTO idx (rtype, rid, token) VALUES
			('Patient', 'a', CAST('x' AS BLOB)), ('Patient', 'a', CAST('y' AS BLOB)),
			('Patient', 'b', CAST('y' AS BLOB)), ('Patient', 'b', CAST('z' AS BLOB))`,
		FillTokset,
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()

	be := openBackend(t, dir)
	var ddl []string
	err = be.View(context.Background(), func(r store.Reader) error {
		rows, err := r.(*reader).db.query(context.Background(), `SELECT coalesce(sql, '') FROM sqlite_master WHERE tbl_name = 'idx'`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			ddl = append(ddl, strings.Join(strings.Fields(s), " "))
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ddl) != 1 || !strings.Contains(ddl[0], "PRIMARY KEY (token, rtype, rid)") || !strings.Contains(ddl[0], "WITHOUT ROWID") {
		t.Errorf("idx after the migration: %q, want one table keyed by (token, rtype, rid) and no other index", ddl)
	}
	for tok, want := range map[string][]string{"x": {"a"}, "y": {"a", "b"}, "z": {"b"}} {
		if got := rowsMatching(t, be, tok); !slices.Equal(got, want) {
			t.Errorf("after the migration %s matches %v, want %v", tok, got, want)
		}
	}
	putTokens(t, be, "a", 2, "x", "w")
	for tok, want := range map[string][]string{"w": {"a"}, "x": {"a"}, "y": {"b"}, "z": {"b"}} {
		if got := rowsMatching(t, be, tok); !slices.Equal(got, want) {
			t.Errorf("after an update %s matches %v, want %v", tok, got, want)
		}
	}
	if got := rowsOf(t, be, "a"); !slices.Equal(got, []string{"w", "x"}) {
		t.Errorf("a's rows after an update: %v, want [w x]", got)
	}
}

// rowsMatching returns the Patient ids that carry tok.
func rowsMatching(t *testing.T, be *Backend, tok string) []string {
	t.Helper()
	return match(t, be, store.MatchQuery{Type: "Patient", All: [][]store.Token{{store.Token(tok)}}})
}
