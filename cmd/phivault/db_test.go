package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/synth"
)

var pgStop sync.Once

// TestPostgresDataDirectory runs a data directory whose store is a
// PostgreSQL database: init records the database (never its password),
// import and reads work through the same commands, nothing of the store
// lands in the directory, and the directory is never opened on the
// other backend by mistake.
func TestPostgresDataDirectory(t *testing.T) {
	dsn := pgtest.DSN(t) // skips without PostgreSQL, fails when CI=true
	pgStop.Do(func() { atExit(pgtest.Stop) })
	dir := filepath.Join(t.TempDir(), "pg")
	withPassword := dsn + " password=s3cret-pw" // trust auth ignores it; it must not be stored
	var out, errb bytes.Buffer
	if code := run([]string{"init", "--data", dir, "--dev-key", "--db", withPassword}, &out, &errb); code != 0 {
		t.Fatalf("init --db: exit %d: %s", code, errb.String())
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, storeFileName))
	if !bytes.Contains(cfg, []byte(`"postgres"`)) || bytes.Contains(cfg, []byte("s3cret-pw")) {
		t.Fatalf("store.json = %s; want the postgres backend and no password", cfg)
	}

	// Import a synthetic patient through the normal import path.
	bundles := synth.Generate(synth.Options{Seed: 7, Patients: 2})
	var files []string
	for i, b := range bundles {
		raw, _ := json.Marshal(b)
		p := filepath.Join(t.TempDir(), "b"+string(rune('a'+i))+".json")
		os.WriteFile(p, raw, 0o600)
		files = append(files, p)
	}
	errb.Reset()
	if code := run(append([]string{"import", "--data", dir}, files...), io.Discard, &errb); code != 0 {
		t.Fatalf("import: exit %d: %s", code, errb.String())
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	patients, err := n.records.Count(context.Background(), store.MatchQuery{Type: "Patient"})
	rep, cerr := n.records.Check(context.Background(), 10, nil)
	n.close()
	if err != nil || patients != 2 {
		t.Errorf("patients in the PostgreSQL store = %d, %v; want 2", patients, err)
	}
	if cerr != nil || !rep.OK() || rep.Versions == 0 {
		t.Errorf("check: %+v %v", rep, cerr)
	}
	if _, err := os.Stat(filepath.Join(dir, "phivault.db")); err == nil {
		t.Error("a SQLite file was created in a PostgreSQL data directory")
	}

	for _, tc := range []struct{ in, want string }{
		{"postgres://u:pw@h/db?sslmode=verify-full", "postgres://u@h/db?sslmode=verify-full"},
		{"host=h user=u password='a b\\'c' dbname=d", "host=h user=u dbname=d"},
		{"host=h password=pw", "host=h"},
	} {
		if got, ok := withoutPassword(tc.in); !ok || got != tc.want {
			t.Errorf("withoutPassword(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}

	// Backups of a PostgreSQL store work (their contents: backup_pg_test.go).
	if code := run([]string{"backup", "create", "--data", dir, "--repo", t.TempDir(), "--recipient", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"}, io.Discard, &errb); code != exitOK {
		t.Errorf("backup create of a PostgreSQL store: exit %d, want %d: %s", code, exitOK, errb.String())
	}

	// An embedded directory is not opened on PostgreSQL because PHIVAULT_DB is set.
	lite := filepath.Join(t.TempDir(), "lite")
	if _, err := initDir(lite, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PHIVAULT_DB", dsn)
	errb.Reset()
	if code := run([]string{"check", "--data", lite}, io.Discard, &errb); code != exitUsage || !strings.Contains(errb.String(), "embedded store") {
		t.Errorf("check of an embedded directory with PHIVAULT_DB set: exit %d %q", code, errb.String())
	}
}
