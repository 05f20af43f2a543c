package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// ErrArchiveRace means another archive recorded a segment first: the
// segment written does not continue the last recorded one.
var ErrArchiveRace = errors.New("audit: another segment was archived meanwhile")

// ArchiveRecord is what the store's metadata keeps of an archived segment
// (under audit/archive/<From, 20 digits>). Segments recorded follow one
// another: each starts where the previous one ended.
type ArchiveRecord struct {
	From      uint64    `json:"from"`
	To        uint64    `json:"to"`
	TreeSize  uint64    `json:"treeSize"`
	SHA256    string    `json:"sha256"` // of the segment file, hex
	Archived  time.Time `json:"archived"`
	KeepUntil time.Time `json:"keepUntil,omitempty"`
	// Where names the copy written (a file name, "stdout").
	Where string `json:"where,omitempty"`
}

func archiveKey(from uint64) string { return fmt.Sprintf("%s%020d", prefixArchive, from) }

// Archives returns the recorded segments, in log order.
func Archives(r store.Reader) ([]ArchiveRecord, error) {
	kvs, err := r.MetaPrefix(prefixArchive)
	if err != nil {
		return nil, fmt.Errorf("audit: archives: %w", err)
	}
	out := make([]ArchiveRecord, 0, len(kvs))
	for _, kv := range kvs {
		var rec ArchiveRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("audit: archive record %q: %v", kv.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// ArchivedUpTo returns the end of the last recorded segment: the first
// leaf not yet archived (0 if none is).
func ArchivedUpTo(r store.Reader) (uint64, error) {
	recs, err := Archives(r)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	return recs[len(recs)-1].To, nil
}

// RecordArchive records rec and appends ev (the audit event of the archive
// action) in one transaction, so a segment is never recorded unaudited. It
// fails with ErrArchiveRace unless rec continues the last recorded segment.
// It removes nothing from the log.
func RecordArchive(ctx context.Context, st store.Backend, rec ArchiveRecord, ev *Event) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	leaf := ev.Leaf()
	return st.Update(ctx, func(w store.Writer) error {
		end, err := ArchivedUpTo(w)
		if err != nil {
			return err
		}
		if end != rec.From {
			return fmt.Errorf("%w: the archived leaves end at %d, not %d", ErrArchiveRace, end, rec.From)
		}
		if err := w.CreateMeta(archiveKey(rec.From), val); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("%w: %v", ErrArchiveRace, err)
			}
			return fmt.Errorf("audit: record archive: %w", err)
		}
		if _, err := w.AppendAudit(leaf); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil
	})
}
