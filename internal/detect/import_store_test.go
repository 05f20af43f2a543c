package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// newImports opens an import store over a real SQLite store in a new
// directory.
func newImports(tb testing.TB, wrap func(store.Backend) store.Backend) *Imports {
	tb.Helper()
	ctx := context.Background()
	tmp := tb.TempDir()
	kp := filepath.Join(tmp, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		tb.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(tmp, "db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	b, err := barrier.Open(ctx, kek, st, 100)
	if err != nil {
		tb.Fatal(err)
	}
	var bk store.Backend = st
	if wrap != nil {
		bk = wrap(st)
	}
	imp, err := NewImports(ctx, bk, b)
	if err != nil {
		tb.Fatal(err)
	}
	return imp
}

// syntheticLog is n distinct CSV rows in the import format.
func syntheticLog(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("time,user_id,action,patient_id,user_name,user_role,department,resource_type,resource_id,source_ip,workstation,outcome\n")
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for i := range n {
		fmt.Fprintf(&buf, "%s,u%04d,read,p%05d,Name %d,nurse,ICU,Observation,o%d,10.0.%d.%d,ws%d,success\n",
			t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%200, i%5000, i%200, i, i%250, i%200, i%50)
	}
	return buf.Bytes()
}

// failingStore is the real store whose writes fail after a number of
// metadata writes in a transaction, as a full disk would.
type failingStore struct {
	store.Backend
	after int
}

type failingWriter struct {
	store.Writer
	left *int
}

func (f failingWriter) SetMeta(k string, v []byte) error {
	if *f.left == 0 {
		return errors.New("disk full")
	}
	*f.left--
	return f.Writer.SetMeta(k, v)
}

func (f *failingStore) Update(ctx context.Context, fn func(store.Writer) error) error {
	return f.Backend.Update(ctx, func(w store.Writer) error {
		left := f.after
		return fn(failingWriter{w, &left})
	})
}

// TestImportAllOrNothing: a write failing in the middle of a file leaves
// no row, no import record and no audit leaf; the same import then
// succeeds whole, and again stores nothing new.
func TestImportAllOrNothing(t *testing.T) {
	ctx := context.Background()
	var fs *failingStore
	imp := newImports(t, func(st store.Backend) store.Backend { fs = &failingStore{Backend: st, after: 50}; return fs })
	rows, _, err := ParseImport(bytes.NewReader(syntheticLog(200)), FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(*ImportRecord) []byte { return []byte(`{"interaction":"monitor-import"}`) }
	rec := &ImportRecord{Time: time.Now().UTC(), FileSHA256: "x"}
	if err := imp.Add(ctx, rows, rec, leaf); err == nil {
		t.Fatal("the failing import reported success")
	}
	got, err := imp.Rows(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("after a failed import: %d rows stored (%v), want none", len(got), err)
	}
	var leaves int64
	fs.View(ctx, func(r store.Reader) (err error) { leaves, err = r.AuditSize(); return err })
	if recs, _ := imp.Records(ctx); len(recs) != 0 || leaves != 0 {
		t.Fatalf("after a failed import: %d import records, %d audit leaves", len(recs), leaves)
	}
	fs.after = 1 << 30
	if err := imp.Add(ctx, rows, rec, leaf); err != nil || rec.New != 200 || rec.Already != 0 {
		t.Fatalf("retry: %v, %d new, %d already", err, rec.New, rec.Already)
	}
	rec2 := &ImportRecord{Time: time.Now().UTC(), FileSHA256: "x"}
	if err := imp.Add(ctx, rows[50:], rec2, leaf); err != nil || rec2.New != 0 || rec2.Already != 150 {
		t.Fatalf("overlapping import: %v, %d new, %d already", err, rec2.New, rec2.Already)
	}
	got, _ = imp.Rows(ctx)
	recs, _ := imp.Records(ctx)
	if len(got) != 200 || len(recs) != 2 {
		t.Fatalf("%d rows, %d import records; want 200 and 2", len(got), len(recs))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time < got[i-1].Time {
			t.Fatalf("rows not in time order at %d", i)
		}
	}
}

// BenchmarkImport compares, on the same 5,000-row log, parsing alone with
// parsing and storing it sealed (new rows), and with importing it again
// (every row already stored).
func BenchmarkImport(b *testing.B) {
	const n = 5000
	raw := syntheticLog(n)
	ctx := context.Background()
	leaf := func(*ImportRecord) []byte { return nil }
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := ParseImport(bytes.NewReader(raw), FormatCSV); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("parse+seal+store", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			imp := newImports(b, nil)
			b.StartTimer()
			rows, _, _ := ParseImport(bytes.NewReader(raw), FormatCSV)
			if err := imp.Add(ctx, rows, &ImportRecord{}, leaf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("reimport", func(b *testing.B) {
		imp := newImports(b, nil)
		rows, _, _ := ParseImport(bytes.NewReader(raw), FormatCSV)
		if err := imp.Add(ctx, rows, &ImportRecord{}, leaf); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			rows, _, _ := ParseImport(bytes.NewReader(raw), FormatCSV)
			if err := imp.Add(ctx, rows, &ImportRecord{}, leaf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
