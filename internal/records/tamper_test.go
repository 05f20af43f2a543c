package records

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// swapBodies exchanges the sealed bodies of two rows of the versions table
// directly in the SQLite file, as someone with access to the disk could.
func swapBodies(t *testing.T, e *env, a, b [3]any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "db", sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var ba, bb []byte
	const q = `SELECT body FROM versions WHERE rtype = ? AND rid = ? AND vid = ?`
	if err := tx.QueryRow(q, a[:]...).Scan(&ba); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(q, b[:]...).Scan(&bb); err != nil {
		t.Fatal(err)
	}
	const u = `UPDATE versions SET body = ? WHERE rtype = ? AND rid = ? AND vid = ?`
	for _, x := range []struct {
		body []byte
		row  [3]any
	}{{bb, a}, {ba, b}} {
		res, err := tx.Exec(u, append([]any{x.body}, x.row[:]...)...)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("updated %d rows for %v", n, x.row)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestSwappedBodiesFail(t *testing.T) {
	tests := []struct {
		name string
		a, b [3]any
	}{
		// Same patient, so the same data key: only the binding to the row
		// tells them apart.
		{"two resources, same compartment", [3]any{"Observation", "o1", 1}, [3]any{"Observation", "o2", 1}},
		{"two resources, other compartments", [3]any{"Observation", "o1", 1}, [3]any{"Observation", "o3", 1}},
		{"two types", [3]any{"Observation", "o1", 1}, [3]any{"Patient", "o1", 1}},
		{"two versions of one resource", [3]any{"Observation", "o1", 1}, [3]any{"Observation", "o1", 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.commit(t,
				Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "o1-first")},
				Op{Type: "Observation", ID: "o2", Resource: obs("o2", "p1", "o2-secret")},
				Op{Type: "Observation", ID: "o3", Resource: obs("o3", "p9", "o3-secret")},
				Op{Type: "Patient", ID: "o1", Resource: map[string]any{"resourceType": "Patient", "id": "o1", "gender": "p-secret"}},
			)
			e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "o1-second")})
			swapBodies(t, e, tt.a, tt.b)
			for _, row := range [][3]any{tt.a, tt.b} {
				typ, id, vid := row[0].(string), row[1].(string), int64(row[2].(int))
				got, err := e.s.VRead(ctx, typ, id, vid)
				if !errors.Is(err, ErrIntegrity) || got.Body != nil {
					t.Errorf("VRead %s/%s/%d = %q, %v; want ErrIntegrity and no body", typ, id, vid, got.Body, err)
				}
				if err != nil && strings.Contains(err.Error(), "secret") {
					t.Errorf("error text quotes content: %v", err)
				}
			}
			// The resource whose current version was swapped fails Read too.
			if tt.name == "two versions of one resource" {
				if _, err := e.s.Read(ctx, "Observation", "o1"); !errors.Is(err, ErrIntegrity) {
					t.Errorf("Read = %v, want ErrIntegrity", err)
				}
				if _, err := e.s.History(ctx, storeHistory("Observation", "o1")); !errors.Is(err, ErrIntegrity) {
					t.Errorf("History = %v, want ErrIntegrity", err)
				}
			}
			rep, err := e.s.Check(ctx, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.ProblemCount != 2 {
				t.Errorf("Check found %d problems, want 2: %v", rep.ProblemCount, rep.Problems)
			}
		})
	}
}

func TestCheckCleanStore(t *testing.T) {
	e := newEnv(t)
	e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "a")})
	e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "b")})
	e.commit(t, Op{Type: "Observation", ID: "o1"})
	rep, err := e.s.Check(context.Background(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Versions != 3 || rep.Resources != 1 || rep.Deleted != 1 {
		t.Errorf("Check of a clean store = %+v", rep)
	}
}

func storeHistory(typ, id string) store.HistoryQuery { return store.HistoryQuery{Type: typ, ID: id} }
