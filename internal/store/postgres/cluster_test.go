package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

var errFail = errors.New("fn failed on purpose")

// TestTwoNodes opens two Backends on one database, as two phivault nodes
// would, and races writers on both to put each next version of one
// resource, each write with its audit leaf, some failing after writing.
// Every version has exactly one winner, and the audit log both nodes see is
// one dense sequence holding exactly the winners' leaves at the indexes
// they were given.
func TestTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	nodes := []*postgres.Backend{open(t, dsn), open(t, dsn)}
	for _, n := range nodes {
		t.Cleanup(func() { n.Close() })
	}
	const workers, last = 16, 40
	type win struct {
		g   int
		idx int64
	}
	var mu sync.Mutex
	winners := map[int64][]win{}
	var wg sync.WaitGroup
	for g := range workers {
		node := nodes[g%2]
		wg.Go(func() {
			for try := 0; ; try++ {
				var cur int64
				err := node.View(context.Background(), func(r store.Reader) error {
					v, err := r.Current("Patient", "hot")
					if errors.Is(err, store.ErrNotFound) {
						return nil
					}
					cur = v.VID
					return err
				})
				if err != nil {
					t.Errorf("View: %v", err)
					return
				}
				if cur >= last {
					return
				}
				vid, fail := cur+1, (g+try)%7 == 0
				var idx int64
				err = node.Update(context.Background(), func(w store.Writer) error {
					if _, err := w.Put(store.Version{Type: "Patient", ID: "hot", VID: vid, Body: []byte(fmt.Sprint(g))}, nil); err != nil {
						return err
					}
					var err error
					if idx, err = w.AppendAudit(fmt.Appendf(nil, "g%d-v%d", g, vid)); err != nil {
						return err
					}
					if fail {
						return errFail
					}
					return nil
				})
				switch {
				case err == nil:
					mu.Lock()
					winners[vid] = append(winners[vid], win{g, idx})
					mu.Unlock()
				case fail && errors.Is(err, errFail), errors.Is(err, store.ErrConflict):
				default:
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := make([]string, last)
	for vid := int64(1); vid <= last; vid++ {
		w := winners[vid]
		if len(w) != 1 {
			t.Errorf("version %d: %d winners %v, want exactly 1", vid, len(w), w)
			continue
		}
		if w[0].idx < 0 || w[0].idx >= last || want[w[0].idx] != "" {
			t.Errorf("version %d: audit index %d out of range or given twice", vid, w[0].idx)
			continue
		}
		want[w[0].idx] = fmt.Sprintf("g%d-v%d", w[0].g, vid)
	}
	for i, n := range nodes {
		err := n.View(context.Background(), func(r store.Reader) error {
			size, err := r.AuditSize()
			if err != nil {
				return err
			}
			if size != last {
				return fmt.Errorf("AuditSize = %d, want %d (one leaf per winning write)", size, last)
			}
			leaves, err := r.AuditLeaves(0, size)
			if err != nil {
				return err
			}
			for k, l := range leaves {
				if string(l) != want[k] {
					t.Errorf("node %d: leaf %d = %q, want %q", i, k, l, want[k])
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	for i, n := range nodes {
		st := n.Stats()
		t.Logf("node %d: %d updates in %d commits, %d retries", i, st.Updates, st.Commits, st.Retries)
	}
}

// TestRuntimeRole runs a node as a role holding only RuntimeGrants: it
// works, and it cannot change or remove audit leaves or history, truncate,
// drop or create tables, nor apply migrations.
func TestRuntimeRole(t *testing.T) {
	ctx := context.Background()
	admin := pgtest.AdminDSN(t)
	dsn := pgtest.DSN(t)
	var schema string
	func() {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if err := c.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
	}()
	owner := open(t, dsn) // migrates as the owner
	defer owner.Close()
	role := "phivault_rt_" + schema
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		t.Skipf("cannot create a role (needs CREATEROLE): %v", err)
	}
	t.Cleanup(func() {
		pgtest.Exec(t, admin, "DROP OWNED BY "+role, "DROP ROLE "+role)
	})
	pgtest.Exec(t, dsn, postgres.RuntimeGrants(schema, role)...)
	rdsn := pgtest.WithParam(dsn, "role", role)

	rt := open(t, rdsn)
	err = rt.Update(ctx, func(w store.Writer) error {
		if _, err := w.Put(store.Version{Type: "Patient", ID: "p", VID: 1, Body: []byte("x")}, []store.Token{store.Token("t")}); err != nil {
			return err
		}
		if _, err := w.Put(store.Version{Type: "Patient", ID: "p", VID: 2, Body: []byte("y")}, []store.Token{store.Token("u")}); err != nil {
			return err
		}
		if err := w.SetMeta("k", []byte("v")); err != nil {
			return err
		}
		if err := w.DeleteMeta("k"); err != nil {
			return err
		}
		_, err := w.AppendAudit([]byte("leaf"))
		return err
	})
	if err != nil {
		t.Fatalf("Update as the runtime role: %v", err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}

	rc, err := pgx.Connect(ctx, rdsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	for _, s := range []string{
		`UPDATE audit SET leaf = 'forged'`,
		`DELETE FROM audit`,
		`TRUNCATE audit`,
		`UPDATE versions SET body = 'forged'`,
		`DELETE FROM versions`,
		`TRUNCATE current`,
		`DROP TABLE audit`,
		`ALTER TABLE audit DISABLE TRIGGER ALL`,
		`CREATE TABLE evil (i int)`,
	} {
		_, err := rc.Exec(ctx, s)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the runtime role: %v, want insufficient_privilege (42501)", s, err)
		}
	}
	err = owner.View(ctx, func(r store.Reader) error {
		l, err := r.AuditLeaves(0, 1)
		if err == nil && string(l[0]) != "leaf" {
			err = fmt.Errorf("audit leaf = %q", l[0])
		}
		return err
	})
	if err != nil {
		t.Errorf("audit after the refused statements: %v", err)
	}

	// On a schema that needs migrating the runtime role cannot open.
	fresh := pgtest.DSN(t)
	var freshSchema string
	fc, err := pgx.Connect(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close(ctx)
	if err := fc.QueryRow(ctx, "SELECT current_schema()").Scan(&freshSchema); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, fresh, "GRANT USAGE ON SCHEMA "+freshSchema+" TO "+role)
	if b, err := postgres.Open(ctx, pgtest.WithParam(fresh, "role", role)); !errors.Is(err, postgres.ErrSchemaBehind) {
		if b != nil {
			b.Close()
		}
		t.Errorf("Open of an unmigrated schema as the runtime role: %v, want ErrSchemaBehind", err)
	}
}
