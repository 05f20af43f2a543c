// Package testdb gives tests a fresh, empty store.Backend on the backend
// the environment chooses, so one suite runs unchanged on every backend.
//
// PHIVAULT_TEST_DB selects it: unset or "sqlite" for the embedded store in
// a temporary directory, "postgres" for a new schema in PostgreSQL (see
// pgtest: it skips without a server and fails when CI=true). Any other
// value fails the test. The backend is closed when the test ends.
//
// A package whose tests call Open stops pgtest's throwaway server from
// TestMain:
//
//	func TestMain(m *testing.M) { code := m.Run(); testdb.Stop(); os.Exit(code) }
package testdb

import (
	"context"
	"os"
	"testing"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// Env names the environment variable that chooses the backend.
const Env = "PHIVAULT_TEST_DB"

// Name returns the chosen backend, "sqlite" or "postgres" (or the
// unrecognised value, which Open rejects), for log lines.
func Name() string {
	if v := os.Getenv(Env); v != "" {
		return v
	}
	return "sqlite"
}

// Open returns a new, empty backend of the chosen kind, closed by
// t.Cleanup.
func Open(t testing.TB) store.Backend {
	t.Helper()
	var (
		db  store.Backend
		err error
	)
	switch Name() {
	case "sqlite":
		db, err = sqlite.Open(t.TempDir())
	case "postgres":
		db, err = postgres.Open(context.Background(), pgtest.DSN(t))
	default:
		t.Fatalf("testdb: %s=%q: want \"sqlite\" (the default) or \"postgres\"", Env, os.Getenv(Env))
	}
	if err != nil {
		t.Fatalf("testdb: open %s: %v", Name(), err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("testdb: close %s: %v", Name(), err)
		}
	})
	return db
}

// Stop stops pgtest's throwaway PostgreSQL server, if one was started.
func Stop() { pgtest.Stop() }
