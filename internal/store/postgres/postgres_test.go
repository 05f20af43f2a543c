package postgres_test

import (
	"bytes"
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

// TestAuditRowsCompressed: audit rows are in the stored form store.PackLeaf
// defines, the same as the SQLite backend's, so that rows copied between
// the two (migrate, backup and restore) read back unchanged.
func TestAuditRowsCompressed(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	b := open(t, dsn)
	defer b.Close()
	leaf := []byte(`{"action":"R","entity":[{"role":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/p000042"}}],"outcome":"0","recorded":"2026-11-02T08:14:59.120334Z","resourceType":"AuditEvent","subtype":[{"code":"read","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}`)
	if err := b.Update(ctx, func(w store.Writer) error { _, err := w.AppendAudit(leaf); return err }); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var row []byte
	if err := c.QueryRow(ctx, `SELECT leaf FROM audit WHERE idx = 0`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(row, store.PackLeaf(leaf)) || len(row)*3 > len(leaf) {
		t.Errorf("a %d-byte leaf is stored as %d bytes %.8x..., want store.PackLeaf's form, under a third", len(leaf), len(row), row)
	}
	// A row as an earlier version wrote it (the leaf itself) reads back.
	if _, err := c.Exec(ctx, `WITH h AS (UPDATE audit_head SET size = size + 1 RETURNING size - 1 AS idx) INSERT INTO audit (idx, leaf) SELECT idx, $1 FROM h`, leaf); err != nil {
		t.Fatal(err)
	}
	if err := b.View(ctx, func(r store.Reader) error {
		got, err := r.AuditLeaves(0, 2)
		if err == nil && (len(got) != 2 || !bytes.Equal(got[0], leaf) || !bytes.Equal(got[1], leaf)) {
			t.Errorf("read back %q, want the leaf twice", got)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
