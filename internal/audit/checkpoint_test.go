package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointFormat(t *testing.T) {
	root := bytes.Repeat([]byte{0xab}, 32)
	c := Checkpoint{Origin: testOrigin, Size: 42, Root: root}
	want := testOrigin + "\n42\n" + base64.StdEncoding.EncodeToString(root) + "\n"
	if c.Body() != want {
		t.Fatalf("body %q, want %q", c.Body(), want)
	}
	s, v := testKeys(t, testOrigin)
	signed, err := SignCheckpoint(c, s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(signed), want+"\n— "+testOrigin+" ") {
		t.Fatalf("signed note:\n%s", signed)
	}
	got, err := OpenCheckpoint(signed, v)
	if err != nil || got.Size != 42 || !bytes.Equal(got.Root, root) || got.Origin != testOrigin {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}

	_, other := testKeys(t, testOrigin) // same name, another key
	if _, err := OpenCheckpoint(signed, other); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("another key: %v, want ErrBadCheckpoint", err)
	}
	flipped := bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := OpenCheckpoint(flipped, v); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("edited size: %v, want ErrBadCheckpoint", err)
	}
	s2, _ := testKeys(t, "other.origin/log")
	if _, err := SignCheckpoint(c, s2); err == nil {
		t.Error("signing with a key named differently from the origin succeeded")
	}

	for _, bad := range []string{"", "o\n", "o\n01\n" + base64.StdEncoding.EncodeToString(root) + "\n", "o\n1\nshort\n", "o\n-1\nAAAA\n"} {
		if _, err := ParseCheckpoint(bad); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("ParseCheckpoint(%q) = %v, want ErrBadCheckpoint", bad, err)
		}
	}
	ext, err := ParseCheckpoint(want + "extension line\n")
	if err != nil || ext.Size != 42 {
		t.Errorf("checkpoint with an extension line: %+v, %v", ext, err)
	}
}

func TestSplitNotes(t *testing.T) {
	s, v := testKeys(t, testOrigin)
	var all []byte
	for i := range 3 {
		n, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: uint64(i + 1), Root: make([]byte, 32)}, s)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, n...)
	}
	notes, err := SplitNotes(all)
	if err != nil || len(notes) != 3 {
		t.Fatalf("SplitNotes: %d notes, %v", len(notes), err)
	}
	for i, n := range notes {
		c, err := OpenCheckpoint(n, v)
		if err != nil || c.Size != uint64(i+1) {
			t.Errorf("note %d: %+v, %v", i, c, err)
		}
	}
	if _, err := SplitNotes(all[:len(all)-3]); err == nil {
		t.Error("truncated file accepted")
	}
}

// TestCheckpointer runs the goroutine while events arrive and checks that
// checkpoints appear within the interval, reach the witness file, verify
// with the public key alone, and that a stop leaves no unsigned tail.
func TestCheckpointer(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	s, v := testKeys(t, testOrigin)
	wfile := filepath.Join(t.TempDir(), "witness")
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{
		Interval: 50 * time.Millisecond, Witnesses: []Witness{&FileWitness{Path: wfile}},
	})
	p := NewProver(st)
	if _, err := p.LatestCheckpoint(ctx); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("LatestCheckpoint on an empty log: %v", err)
	}
	cp.Start(ctx)
	log := NewLog(st, time.Second)
	for i := range 300 {
		if err := log.Record(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			time.Sleep(120 * time.Millisecond)
		}
	}
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	latest, err := p.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint(latest, v)
	if err != nil || c.Size != 300 {
		t.Fatalf("latest checkpoint %+v, %v; want size 300", c, err)
	}
	var n int
	_ = st.View(ctx, func(r store.Reader) error {
		kvs, err := r.MetaPrefix(prefixCheckpt)
		n = len(kvs)
		return err
	})
	if n < 3 {
		t.Errorf("%d checkpoints stored, want one per interval while events arrived (>= 3)", n)
	}
	data, err := os.ReadFile(wfile)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := SplitNotes(data)
	if err != nil || len(notes) != n {
		t.Fatalf("witness file: %d notes (%v), want %d", len(notes), err, n)
	}

	// A proof for every leaf verifies offline with the public key only.
	for i := uint64(0); i < 300; i += 7 {
		prf, err := p.InclusionProof(ctx, i, c.Size)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := p.Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyInclusion(leaf, i, latest, prf, v); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		leaf[len(leaf)/2] ^= 1
		if _, err := VerifyInclusion(leaf, i, latest, prf, v); err == nil {
			t.Fatalf("leaf %d: a changed leaf verified", i)
		}
	}
	first, err := OpenCheckpoint(notes[0], v)
	if err != nil {
		t.Fatal(err)
	}
	prf, err := p.ConsistencyProof(ctx, first.Size, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(notes[0], latest, prf, v); err != nil {
		t.Fatal(err)
	}
	if len(prf) > 0 {
		prf[0][0] ^= 1
		if err := VerifyConsistency(notes[0], latest, prf, v); err == nil {
			t.Fatal("a changed consistency proof verified")
		}
	}

	// Nothing new: no new checkpoint.
	again, err := cp.Checkpoint(ctx)
	if err != nil || !bytes.Equal(again, latest) {
		t.Fatalf("Checkpoint with no new leaves: %v, new note %v", err, !bytes.Equal(again, latest))
	}
	if rep := verifyStore(t, st, v); !rep.OK() || rep.Verified != 300 {
		t.Fatalf("clean log: %v (verified %d)", rep.Err(), rep.Verified)
	}
	if rep, err := verifyAgainstStore(t, st, v, wfile); err != nil || !rep.OK() {
		t.Fatalf("against the witness file: %v %v", err, rep.Err())
	}
}

func verifyAgainstStore(t *testing.T, st store.Backend, v note.Verifier, file string) (*Report, error) {
	t.Helper()
	var rep *Report
	err := st.View(context.Background(), func(r store.Reader) (err error) {
		rep, err = VerifyAgainst(context.Background(), r, v, file)
		return err
	})
	return rep, err
}
