package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

func open(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Backend {
	t.Helper()
	b, err := postgres.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return open(t, pgtest.DSN(t)) })
}

// TestConformanceICU runs the suite in a database whose default collation
// is ICU en-US, where "a" sorts before "B": ids and metadata keys must still
// come back in byte order.
func TestConformanceICU(t *testing.T) {
	admin := pgtest.AdminDSN(t)
	name := "phivault_icu_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	c, err := pgx.Connect(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"); err != nil {
		t.Skipf("cannot create an ICU database: %v", err)
	}
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP DATABASE "+name+" WITH (FORCE)") })
	db := pgtest.WithParam(admin, "dbname", name)
	dc, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close(context.Background())
	var lt bool
	if err := dc.QueryRow(context.Background(), "SELECT 'a' < 'B'").Scan(&lt); err != nil || !lt {
		t.Fatalf("the ICU database sorts 'a' < 'B' = %v, %v; want true (not byte order)", lt, err)
	}
	storetest.Run(t, func(t *testing.T) store.Backend { return open(t, pgtest.SchemaIn(t, db)) })
}
