package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// sqliteLog returns a real SQLite store holding events [0, n) (testEvent:
// event i is recorded at 2026-01-01 plus i ms) with a signed checkpoint
// every `every` events and at the end.
func sqliteLog(t *testing.T, n, every int, s note.Signer) store.Backend {
	t.Helper()
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{})
	for i := 0; i < n; i += every {
		appendLeaves(t, st, i, min(every, n-i))
		if _, err := cp.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func latest(t *testing.T, p *Prover) []byte {
	t.Helper()
	cp, err := p.LatestCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// writeSegment plans and writes a segment, failing the test on error.
func writeSegment(t *testing.T, p *Prover, cp []byte, v note.Verifier, opt SegmentOptions) (*Segment, []byte) {
	t.Helper()
	seg, err := PlanSegment(context.Background(), p, cp, v, opt)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	sum, n, err := seg.WriteTo(context.Background(), p, &b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) || sum != sha256.Sum256(b.Bytes()) {
		t.Fatalf("WriteTo reported %d bytes, sum %x; wrote %d", n, sum, b.Len())
	}
	return seg, b.Bytes()
}

// segmentLeaves decodes the leaves of a segment file (the last To-From
// lines), independently of VerifyArchive.
func segmentLeaves(t *testing.T, file []byte) (ArchiveHeader, [][]byte) {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(file, []byte("\n")), []byte("\n"))
	var h ArchiveHeader
	if err := json.Unmarshal(lines[0], &h); err != nil {
		t.Fatal(err)
	}
	n := int(h.To - h.From)
	if len(lines) != 1+2*n {
		t.Fatalf("%d lines for %d leaves", len(lines), n)
	}
	var out [][]byte
	for _, l := range lines[1+n:] {
		b, err := base64.StdEncoding.DecodeString(string(l))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return h, out
}

func recordedOf(t *testing.T, leaf []byte) time.Time {
	t.Helper()
	var ev struct{ Recorded time.Time }
	if err := json.Unmarshal(leaf, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Recorded
}

// TestArchiveSegments: on a SQLite log of 10,000 events, a segment cut at
// a date verifies with the public key alone, holds exactly the leaves
// before the first one recorded at or after the date, byte for byte; a
// second segment continues it; archiving again with nothing new is
// refused; records chain and each appends its event.
func TestArchiveSegments(t *testing.T) {
	ctx := context.Background()
	s, v := testKeys(t, testOrigin)
	st := sqliteLog(t, 10000, 2500, s)
	p := NewProver(st)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before := base.Add(4321*time.Millisecond + 500*time.Microsecond)

	seg1, file1 := writeSegment(t, p, latest(t, p), v, SegmentOptions{From: 0, Before: before})
	rep, err := VerifyArchive(bytes.NewReader(file1), v)
	if err != nil || !rep.OK() || !rep.RootOK {
		t.Fatalf("untouched segment: %v %+v", err, rep.Problems)
	}
	h, leaves := segmentLeaves(t, file1)
	if h.From != 0 || h.TreeSize != 10000 || rep.Leaves != uint64(len(leaves)) {
		t.Fatalf("header %+v, %d leaves read", h, rep.Leaves)
	}
	// The cut: every leaf in the segment before the date, the next at/after.
	for i, l := range leaves {
		if !recordedOf(t, l).Before(before) {
			t.Fatalf("leaf %d recorded %s is not before %s", i, recordedOf(t, l), before)
		}
		want, _ := p.Leaf(ctx, uint64(i))
		if !bytes.Equal(l, want) {
			t.Fatalf("leaf %d is not the stored leaf", i)
		}
	}
	next, err := p.Leaf(ctx, h.To)
	if err != nil || recordedOf(t, next).Before(before) {
		t.Fatalf("leaf %d (the first not archived) recorded %s, want at/after %s", h.To, recordedOf(t, next), before)
	}

	ev := &Event{Time: time.Now(), Interaction: "audit-archive", Action: "E", Outcome: Success, UserID: "operator:test", Allowed: true}
	size0, _ := p.Size(ctx)
	if err := RecordArchive(ctx, st, ArchiveRecord{From: h.From, To: h.To, TreeSize: h.TreeSize}, ev); err != nil {
		t.Fatal(err)
	}
	if size1, _ := p.Size(ctx); size1 != size0+1 {
		t.Fatalf("recording the archive appended %d events, want 1", size1-size0)
	}
	if err := RecordArchive(ctx, st, ArchiveRecord{From: h.From, To: h.To}, ev); !errors.Is(err, ErrArchiveRace) {
		t.Fatalf("recording the same segment twice: %v, want ErrArchiveRace", err)
	}
	var from uint64
	st.View(ctx, func(r store.Reader) (err error) { from, err = ArchivedUpTo(r); return err })
	if from != seg1.Header.To {
		t.Fatalf("ArchivedUpTo %d, want %d", from, seg1.Header.To)
	}

	// Nothing new before the same date: no segment.
	if _, err := PlanSegment(ctx, p, latest(t, p), v, SegmentOptions{From: from, Before: before}); !errors.Is(err, ErrNothingToArchive) {
		t.Fatalf("archiving again: %v, want ErrNothingToArchive", err)
	}

	// The second segment continues from the first, against a newer checkpoint.
	cp, err := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{}).Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, file2 := writeSegment(t, p, cp, v, SegmentOptions{From: from, UpTo: 9000})
	rep2, err := VerifyArchive(bytes.NewReader(file2), v)
	if err != nil || !rep2.OK() {
		t.Fatalf("second segment: %v %+v", err, rep2.Problems)
	}
	h2, leaves2 := segmentLeaves(t, file2)
	if h2.From != h.To || h2.To != 9000 || h2.TreeSize != 10001 {
		t.Fatalf("second header %+v", h2)
	}
	for i, l := range leaves2 {
		want, _ := p.Leaf(ctx, h2.From+uint64(i))
		if !bytes.Equal(l, want) {
			t.Fatalf("second segment leaf %d is not the stored leaf", h2.From+uint64(i))
		}
	}
	if _, err := PlanSegment(ctx, p, cp, v, SegmentOptions{From: from, UpTo: 20000}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("--upto beyond the checkpoint: %v", err)
	}
	// The live log still verifies whole: archiving removed nothing.
	if rep := verifyStore(t, st, v); !rep.OK() || rep.Leaves != 10001 {
		t.Fatalf("live log after archiving: %d leaves, %v", rep.Leaves, rep.Err())
	}
}

// TestArchiveRefusesTamperedLog: a live log whose stored leaf no longer
// matches the signed checkpoint cannot be archived.
func TestArchiveRefusesTamperedLog(t *testing.T) {
	s, v := testKeys(t, testOrigin)
	db := sqliteDB(t)
	st := db.open(t)
	appendLeaves(t, st, 0, 600)
	cp, err := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{}).Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	tm := db.tamper(t)
	tm.exec(t, "UPDATE audit SET leaf = ? WHERE idx = ?", testEvent(9999).Leaf(), 100)
	tm.close()
	st = db.open(t)
	defer st.Close()
	if _, err := PlanSegment(context.Background(), NewProver(st), cp, v, SegmentOptions{UpTo: 500}); !errors.Is(err, ErrTampered) {
		t.Fatalf("archiving a tampered log: %v, want ErrTampered", err)
	}
}
