package detect

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

const (
	importRowPrefix = "monitor-row/"
	importRecPrefix = "monitor-import/"
)

// ImportRecord describes one import as the store keeps it (sealed): when,
// by whom, the file's SHA-256 and size, and the counts.
type ImportRecord struct {
	Time       time.Time  `json:"time"`
	By         string     `json:"by"`
	Format     string     `json:"format"`
	FileSHA256 string     `json:"file_sha256"`
	FileSize   int64      `json:"file_size"`
	Parse      ParseStats `json:"parse"`
	New        int        `json:"new"`
	Already    int        `json:"already_imported"`
}

// Imports keeps imported access-log rows in the store's metadata, sealed
// by the barrier under the "monitor" data key. Each row is stored under a
// blind name, a keyed token (the barrier's index key) of its canonical
// columns, so the store sees neither user nor patient ids, the same row
// imported twice has the same name and is stored once, and nobody without
// the index key can test whether a guessed access was imported. Each
// record is bound to its name, so records cannot be swapped.
type Imports struct {
	st store.Backend
	b  *barrier.Barrier
}

// NewImports returns the import store over st sealed by b.
func NewImports(ctx context.Context, st store.Backend, b *barrier.Barrier) (*Imports, error) {
	// Create the data key now, so that sealing inside the import's
	// transaction never needs a write of its own.
	if _, err := b.KeyFor(ctx, alertKeyName); err != nil {
		return nil, err
	}
	return &Imports{st: st, b: b}, nil
}

func (s *Imports) rowName(r *Row) string {
	return importRowPrefix + hex.EncodeToString(s.b.Token(append([]string{"monitor-row"}, r.fields()...)...))
}

// Add stores the rows that are not stored yet, the import record and the
// audit leaf that leaf returns for the final record, all in one
// transaction: after a crash either the whole file is imported and
// audited or nothing is. It fills rec.New and rec.Already.
func (s *Imports) Add(ctx context.Context, rows []ParsedRow, rec *ImportRecord, leaf func(*ImportRecord) []byte) error {
	recName := importRecPrefix + hex.EncodeToString(s.b.Token("monitor-import", rec.FileSHA256, rec.Time.Format(time.RFC3339Nano)))
	return s.st.Update(ctx, func(w store.Writer) error {
		rec.New, rec.Already = 0, 0 // fn may run again
		for i := range rows {
			name := s.rowName(&rows[i].Row)
			if _, err := w.Meta(name); err == nil {
				rec.Already++
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			pt, err := json.Marshal(&rows[i].Row)
			if err != nil {
				return err
			}
			sealed, err := s.b.Seal(ctx, alertKeyName, barrier.Context("monitor-row", name), pt)
			if err != nil {
				return err
			}
			if err := w.SetMeta(name, sealed); err != nil {
				return err
			}
			rec.New++
		}
		pt, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		sealed, err := s.b.Seal(ctx, alertKeyName, barrier.Context("monitor-import", recName), pt)
		if err != nil {
			return err
		}
		if err := w.SetMeta(recName, sealed); err != nil {
			return err
		}
		if l := leaf(rec); l != nil {
			_, err = w.AppendAudit(l)
		}
		return err
	})
}

// Rows returns every imported row, sorted by time (then by columns, so the
// order does not depend on the blind names or on the import order).
func (s *Imports) Rows(ctx context.Context) ([]Row, error) {
	var kvs []store.KV
	if err := s.st.View(ctx, func(r store.Reader) (err error) {
		kvs, err = r.MetaPrefix(importRowPrefix)
		return err
	}); err != nil {
		return nil, err
	}
	rows := make([]Row, len(kvs))
	for i, kv := range kvs {
		pt, err := s.b.Open(ctx, barrier.Context("monitor-row", kv.Key), kv.Value)
		if err != nil {
			return nil, fmt.Errorf("detect: opening imported row: %w", err)
		}
		if err := json.Unmarshal(pt, &rows[i]); err != nil {
			return nil, fmt.Errorf("detect: imported row: %v", err)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i].fields(), rows[j].fields()
		if a[0] != b[0] {
			ti, _ := time.Parse(time.RFC3339Nano, a[0])
			tj, _ := time.Parse(time.RFC3339Nano, b[0])
			return ti.Before(tj)
		}
		for k := 1; k < len(a); k++ {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return false
	})
	return rows, nil
}

// Records returns the import records, oldest first.
func (s *Imports) Records(ctx context.Context) ([]ImportRecord, error) {
	var kvs []store.KV
	if err := s.st.View(ctx, func(r store.Reader) (err error) {
		kvs, err = r.MetaPrefix(importRecPrefix)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]ImportRecord, len(kvs))
	for i, kv := range kvs {
		pt, err := s.b.Open(ctx, barrier.Context("monitor-import", kv.Key), kv.Value)
		if err != nil {
			return nil, fmt.Errorf("detect: opening import record: %w", err)
		}
		if err := json.Unmarshal(pt, &out[i]); err != nil {
			return nil, fmt.Errorf("detect: import record: %v", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
