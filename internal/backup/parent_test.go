package backup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestAppendCostsOnlyTheAppendedBytes: a file that only grew (the dump's
// versions and audit leaves) must not store its old last chunk again, and
// over many small appends the number of chunks must not grow by one per
// backup: end-of-file cuts under chunkMin are merged again later, so the
// chunks added stay at most one per chunkMin appended.
func TestAppendCostsOnlyTheAppendedBytes(t *testing.T) {
	f := newFixture(t)
	first, _ := f.backup(t)
	db := f.contents["phivault.db"]
	const step = 4 << 10
	var last *Manifest
	for i := range 20 {
		db = append(bytes.Clone(db), bytes.Repeat([]byte{byte('A' + i)}, step)...)
		f.write(t, "phivault.db", db)
		m, st := f.backup(t)
		// At most the appended bytes plus the small tail merged from the
		// backup before (under chunkMin each).
		if st.NewBytes > step+2*chunkMin {
			t.Fatalf("append %d of %d bytes stored %d new bytes (%d new chunks)", i, step, st.NewBytes, st.NewChunks)
		}
		last = m
	}
	grew := len(fileOf(last, "phivault.db").Chunks) - len(fileOf(first, "phivault.db").Chunks)
	if grew > 20*step/chunkMin+1 {
		t.Fatalf("20 appends of %d bytes added %d chunks: small end-of-file cuts are not merged", step, grew)
	}
	// Every snapshot restores the file as it was.
	r := f.reader(t, f.ids[0])
	to := filepath.Join(t.TempDir(), "restored")
	if err := r.Restore(context.Background(), last, to); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(to, "phivault.db")); err != nil || !bytes.Equal(b, db) {
		t.Fatalf("restored file differs (%v)", err)
	}
}

// TestGuidanceStopsAtAChange: a change in the middle of a file ends the
// parent's guidance there; the chunker takes over, the content is right,
// and the bytes before the change are not stored again.
func TestGuidanceStopsAtAChange(t *testing.T) {
	f := newFixture(t)
	f.backup(t)
	db := bytes.Clone(f.contents["phivault.db"])
	db[len(db)/3] ^= 0xff
	f.write(t, "phivault.db", db)
	m, st := f.backup(t)
	if st.NewBytes == 0 || st.NewBytes > int64(len(db))/4 {
		t.Fatalf("one changed byte stored %d of %d bytes", st.NewBytes, len(db))
	}
	to := filepath.Join(t.TempDir(), "restored")
	if err := f.reader(t, f.ids[1]).Restore(context.Background(), m, to); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "phivault.db")); !bytes.Equal(b, db) {
		t.Fatal("restored file differs")
	}
}

func fileOf(m *Manifest, p string) *File {
	for i := range m.Files {
		if m.Files[i].Path == p {
			return &m.Files[i]
		}
	}
	return nil
}
