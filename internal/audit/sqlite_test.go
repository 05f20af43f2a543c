package audit

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// TestSQLite runs the log on the real backend: concurrent Record, the
// checkpointer, a restart that resumes integration, a clean Verify, then
// tampering with the database file through plain SQL.
func TestSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, v := testKeys(t, testOrigin)
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{Interval: 20 * time.Millisecond})
	cp.Start(ctx)
	l := NewLog(st, 5*time.Second)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := l.Record(ctx, testEvent(g*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: more events, integration resumes from the stored state.
	st, err = sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendLeaves(t, st, 100_000, 1800)
	if _, err := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var orig [][]byte
	rep := verifyStore(t, st, v)
	if !rep.OK() || rep.Leaves != 5000 || rep.Verified != 5000 {
		t.Fatalf("clean sqlite log: %v, %d leaves, verified %d", rep.Err(), rep.Leaves, rep.Verified)
	}
	_ = st.View(ctx, func(r store.Reader) (err error) { orig, err = r.AuditLeaves(0, 5000); return err })
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	restore := func() {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`DELETE FROM audit`); err != nil {
			t.Fatal(err)
		}
		for i, leaf := range orig {
			if _, err := tx.Exec(`INSERT INTO audit (idx, leaf) VALUES (?, ?)`, i, leaf); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		do   func()
		want int64
	}{
		{"flip-bit", func() {
			b := append([]byte(nil), orig[3210]...)
			b[40] ^= 4
			exec(`UPDATE audit SET leaf = ? WHERE idx = 3210`, b)
		}, 3210},
		{"delete-shift", func() {
			exec(`DELETE FROM audit WHERE idx = 777`)
			exec(`UPDATE audit SET idx = idx - 1 WHERE idx > 777`)
		}, 777},
		{"delete-gap", func() { exec(`DELETE FROM audit WHERE idx = 4000`) }, 4000},
		{"swap", func() {
			exec(`UPDATE audit SET leaf = ? WHERE idx = 100`, orig[4500])
			exec(`UPDATE audit SET leaf = ? WHERE idx = 4500`, orig[100])
		}, 100},
		{"truncate", func() { exec(`DELETE FROM audit WHERE idx >= 4990`) }, 4990},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			restore()
			tc.do()
			st, err := sqlite.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rep := verifyStore(t, st, v)
			if rep.OK() || rep.Problems[0].Index != tc.want {
				t.Fatalf("problems %v, want leaf %d named first", rep.Problems, tc.want)
			}
			t.Logf("reported: %v", rep.Problems[0])
		})
	}
}
