package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// storeFileName records, in a data directory, which backend holds its
// store. Absent means the embedded SQLite store.
const storeFileName = "store.json"

// storeConfig is the content of DIR/store.json. The DSN is kept without
// its password; the password comes from PHIVAULT_DB or PostgreSQL's own
// PGPASSWORD / .pgpass.
type storeConfig struct {
	Backend string `json:"backend"` // "sqlite" or "postgres"
	DSN     string `json:"dsn,omitempty"`
}

func readStoreConfig(dir string) (storeConfig, error) {
	b, err := os.ReadFile(filepath.Join(dir, storeFileName))
	if errors.Is(err, os.ErrNotExist) {
		return storeConfig{Backend: "sqlite"}, nil
	}
	if err != nil {
		return storeConfig{}, err
	}
	var c storeConfig
	if err := json.Unmarshal(b, &c); err != nil || (c.Backend != "sqlite" && c.Backend != "postgres") {
		return storeConfig{}, fail(exitFail, filepath.Join(dir, storeFileName)+" is damaged", `it holds {"backend": "sqlite"} or {"backend": "postgres", "dsn": "postgres://..."}`)
	}
	return c, nil
}

// writeStoreConfig records a PostgreSQL store for a new data directory.
func writeStoreConfig(dir, dsn string) error {
	clean, ok := withoutPassword(dsn)
	if !ok {
		return fail(exitUsage, "--db takes a PostgreSQL connection string", "e.g. --db postgres://phivault@db.example.org/phivault?sslmode=verify-full")
	}
	b, _ := json.MarshalIndent(storeConfig{Backend: "postgres", DSN: clean}, "", "  ")
	return os.WriteFile(filepath.Join(dir, storeFileName), append(b, '\n'), 0o600)
}

// passwordKV matches a password in a key=value connection string.
var passwordKV = regexp.MustCompile(`(^|\s)password=('(\\.|[^'])*'|\S*)`)

// withoutPassword returns dsn (a postgres:// URL or key=value string)
// without its password.
func withoutPassword(dsn string) (string, bool) {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		return u.String(), true
	}
	if !strings.Contains(dsn, "=") || strings.Contains(dsn, "://") {
		return "", false
	}
	return strings.TrimSpace(passwordKV.ReplaceAllString(dsn, "")), true
}

// openStore opens the store of dir: the embedded SQLite file, or the
// PostgreSQL database named in DIR/store.json (PHIVAULT_DB, when set,
// gives the full DSN, password included). A directory created for one
// backend is never silently opened on the other.
func openStore(ctx context.Context, dir string) (store.Backend, error) {
	c, err := readStoreConfig(dir)
	if err != nil {
		return nil, err
	}
	env := os.Getenv("PHIVAULT_DB")
	switch {
	case c.Backend == "sqlite" && env != "":
		return nil, fail(exitUsage, dir+" uses the embedded store, but PHIVAULT_DB is set", "unset PHIVAULT_DB, or create a PostgreSQL directory with 'phivault init --db URL'")
	case c.Backend == "sqlite":
		b, err := sqlite.Open(dir)
		if err != nil {
			return nil, err // not a nil *sqlite.Backend in a non-nil interface
		}
		return b, nil
	}
	dsn := c.DSN
	if env != "" {
		dsn = env
	}
	b, err := postgres.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL store (%s): %w", redactDSN(dsn), err)
	}
	return b, nil
}

// redactDSN names a database without its password.
func redactDSN(dsn string) string {
	if clean, ok := withoutPassword(dsn); ok {
		return clean
	}
	return "the configured database"
}
