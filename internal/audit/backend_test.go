package audit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// realDB is a real backend under test: open (re)opens the same database,
// as a restarted node would, and tamper reaches its audit table through
// plain SQL, as someone with the database's files or its owner role could.
type realDB struct {
	open   func(t *testing.T) store.Backend
	tamper func(t *testing.T) tamperer
}

// tamperer edits the audit table (idx, leaf) directly. exec takes ?
// placeholders; restore puts back exactly the given leaves.
type tamperer interface {
	exec(t *testing.T, q string, args ...any)
	restore(t *testing.T, leaves [][]byte)
	close()
}

// TestBackend runs the log on each real backend: concurrent Record, the
// checkpointer, a restart that resumes integration, a clean Verify, then
// tampering with the audit table through plain SQL, where each kind of
// tampering must be caught with the first bad leaf named. The PostgreSQL
// variant skips without a server (pgtest) and fails when CI=true.
func TestBackend(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testBackend(t, sqliteDB(t)) })
	t.Run("postgres", func(t *testing.T) { testBackend(t, postgresDB(t)) })
}

func testBackend(t *testing.T, db realDB) {
	ctx := context.Background()
	st := db.open(t)
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
	st = db.open(t)
	appendLeaves(t, st, 100_000, 1800)
	if _, err := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var orig [][]byte
	rep := verifyStore(t, st, v)
	if !rep.OK() || rep.Leaves != 5000 || rep.Verified != 5000 {
		t.Fatalf("clean log: %v, %d leaves, verified %d", rep.Err(), rep.Leaves, rep.Verified)
	}
	if err := st.View(ctx, func(r store.Reader) (err error) { orig, err = r.AuditLeaves(0, 5000); return err }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	sql := db.tamper(t)
	defer sql.close()
	// The rows as the backend stores them (compressed), which each case
	// starts from.
	stored := make([][]byte, len(orig))
	for i, l := range orig {
		stored[i] = store.PackLeaf(l)
	}
	cases := []struct {
		name string
		do   func(t *testing.T)
		want int64
	}{
		{"flip-bit", func(t *testing.T) { // in a row's stored (compressed) form
			b := append([]byte(nil), stored[3210]...)
			b[len(b)/2] ^= 4
			sql.exec(t, `UPDATE audit SET leaf = ? WHERE idx = 3210`, b)
		}, 3210},
		{"flip-bit-plain", func(t *testing.T) { // in a row stored uncompressed
			b := append([]byte(nil), orig[3210]...)
			b[40] ^= 4
			sql.exec(t, `UPDATE audit SET leaf = ? WHERE idx = 3210`, b)
		}, 3210},
		{"recompressed", func(t *testing.T) { // a valid frame of an edited leaf
			b := append([]byte(nil), orig[2222]...)
			b[40] ^= 4
			sql.exec(t, `UPDATE audit SET leaf = ? WHERE idx = 2222`, store.PackLeaf(b))
		}, 2222},
		{"delete-shift", func(t *testing.T) {
			sql.exec(t, `DELETE FROM audit WHERE idx = 777`)
			// Through negative indexes: a unique index checked row by row
			// (PostgreSQL's) would reject idx - 1 done in the wrong order.
			sql.exec(t, `UPDATE audit SET idx = -idx WHERE idx > 777`)
			sql.exec(t, `UPDATE audit SET idx = -idx - 1 WHERE idx < 0`)
		}, 777},
		{"delete-gap", func(t *testing.T) { sql.exec(t, `DELETE FROM audit WHERE idx = 4000`) }, 4000},
		{"swap", func(t *testing.T) {
			sql.exec(t, `UPDATE audit SET leaf = ? WHERE idx = 100`, stored[4500])
			sql.exec(t, `UPDATE audit SET leaf = ? WHERE idx = 4500`, stored[100])
		}, 100},
		{"truncate", func(t *testing.T) { sql.exec(t, `DELETE FROM audit WHERE idx >= 4990`) }, 4990},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sql.restore(t, stored)
			tc.do(t)
			st := db.open(t)
			defer st.Close()
			rep := verifyStore(t, st, v)
			if rep.OK() || rep.Problems[0].Index != tc.want {
				t.Fatalf("problems %v, want leaf %d named first", rep.Problems, tc.want)
			}
			t.Logf("reported: %v", rep.Problems[0])
		})
	}
}

// TestScanLeavesGap: on a log with a row deleted behind the store's back,
// ScanLeaves (under the syslog sink, the live detector and export) fails
// naming the range instead of looping or numbering later leaves wrong,
// whether the gap is part of a batch or a whole batch.
func TestScanLeavesGap(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testScanLeavesGap(t, sqliteDB(t)) })
	t.Run("postgres", func(t *testing.T) { testScanLeavesGap(t, postgresDB(t)) })
}

func testScanLeavesGap(t *testing.T, db realDB) {
	st := db.open(t)
	defer st.Close()
	appendLeaves(t, st, 0, 12)
	tp := db.tamper(t)
	defer tp.close()
	tp.exec(t, `DELETE FROM audit WHERE idx >= 4 AND idx < 8`)
	for _, batch := range []int{3, 4} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var got []uint64
		err := NewProver(st).ScanLeaves(ctx, 0, 12, batch, func(i uint64, _ []byte) error {
			got = append(got, i)
			return nil
		})
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut || !strings.Contains(err.Error(), "rows are missing") {
			t.Errorf("batch %d: ScanLeaves over a gap: %v (timed out: %v), want the missing rows named", batch, err, timedOut)
		}
		for _, i := range got {
			if i >= 4 {
				t.Errorf("batch %d: leaf %d passed on after the gap", batch, i)
			}
		}
	}
}
