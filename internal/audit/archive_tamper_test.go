package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// segFile is a segment split into its parts, to tamper with.
type segFile struct {
	header map[string]any
	hashes [][]byte // the hash lines
	leaves [][]byte // the leaf lines
}

func splitSegment(t *testing.T, file []byte) segFile {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(file, []byte("\n")), []byte("\n"))
	var f segFile
	if err := json.Unmarshal(lines[0], &f.header); err != nil {
		t.Fatal(err)
	}
	n := (len(lines) - 1) / 2
	f.hashes = append(f.hashes, lines[1:1+n]...)
	f.leaves = append(f.leaves, lines[1+n:]...)
	return f
}

func (f segFile) bytes(t *testing.T) []byte {
	t.Helper()
	h, err := json.Marshal(f.header)
	if err != nil {
		t.Fatal(err)
	}
	b := append(h, '\n')
	for _, l := range append(append([][]byte(nil), f.hashes...), f.leaves...) {
		b = append(append(b, l...), '\n')
	}
	return b
}

func (f segFile) clone() segFile {
	var g segFile
	b, _ := json.Marshal(f.header)
	json.Unmarshal(b, &g.header) // deep: tampering with a copy leaves f alone
	g.hashes = append(g.hashes, f.hashes...)
	g.leaves = append(g.leaves, f.leaves...)
	return g
}

// TestArchiveTamper: in randomized trials on a segment [1000, 2500) of a
// 3,000-event SQLite log, every kind of tampering fails verification, and
// where a leaf is at fault the first problem names its index exactly.
func TestArchiveTamper(t *testing.T) {
	const from, to = 1000, 2500
	s, v := testKeys(t, testOrigin)
	st := sqliteLog(t, 3000, 1000, s)
	p := NewProver(st)
	_, file := writeSegment(t, p, latest(t, p), v, SegmentOptions{From: from, UpTo: to})
	orig := splitSegment(t, file)
	if len(orig.leaves) != to-from {
		t.Fatalf("%d leaves", len(orig.leaves))
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	t.Logf("seed %d", seed)

	verify := func(b []byte) *ArchiveReport {
		t.Helper()
		rep, err := VerifyArchive(bytes.NewReader(b), v)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := verify(orig.bytes(t)); !rep.OK() {
		t.Fatalf("the reassembled segment does not verify: %v", rep.Err())
	}
	wantLeaf := func(name string, rep *ArchiveReport, idx int) {
		t.Helper()
		if rep.OK() {
			t.Fatalf("%s (seed %d): verifies", name, seed)
		}
		if got := rep.Problems[0].Index; got != int64(idx) {
			t.Fatalf("%s (seed %d): first problem %s, want leaf %d", name, seed, rep.Problems[0], idx)
		}
	}
	wantKind := func(name string, rep *ArchiveReport, kinds ...string) {
		t.Helper()
		if rep.OK() {
			t.Fatalf("%s (seed %d): verifies", name, seed)
		}
		for _, k := range kinds {
			if rep.Problems[0].Kind == k {
				return
			}
		}
		t.Fatalf("%s (seed %d): first problem %s, want kind %v", name, seed, rep.Problems[0], kinds)
	}

	const trials = 25
	for range trials {
		// One bit of one leaf.
		f := orig.clone()
		k := rng.IntN(len(f.leaves))
		leaf, _ := base64.StdEncoding.DecodeString(string(f.leaves[k]))
		bit := rng.IntN(len(leaf) * 8)
		leaf[bit/8] ^= 1 << (bit % 8)
		f.leaves[k] = []byte(base64.StdEncoding.EncodeToString(leaf))
		wantLeaf(fmt.Sprintf("bit %d of leaf %d", bit, from+k), verify(f.bytes(t)), from+k)

		// A leaf dropped.
		f = orig.clone()
		k = rng.IntN(len(f.leaves))
		f.leaves = append(f.leaves[:k:k], f.leaves[k+1:]...)
		wantLeaf(fmt.Sprintf("leaf %d dropped", from+k), verify(f.bytes(t)), from+k)

		// Two leaves swapped.
		f = orig.clone()
		i, j := rng.IntN(len(f.leaves)), rng.IntN(len(f.leaves))
		for i == j {
			j = rng.IntN(len(f.leaves))
		}
		f.leaves[i], f.leaves[j] = f.leaves[j], f.leaves[i]
		wantLeaf(fmt.Sprintf("leaves %d and %d swapped", from+i, from+j), verify(f.bytes(t)), from+min(i, j))

		// A leaf and its listed hash changed together: the root fails.
		f = orig.clone()
		k = rng.IntN(len(f.leaves))
		other := testEvent(100000 + rng.IntN(1000)).Leaf()
		f.leaves[k] = []byte(base64.StdEncoding.EncodeToString(other))
		f.hashes[k] = []byte(base64.StdEncoding.EncodeToString(LeafHash(other)))
		wantKind(fmt.Sprintf("leaf %d and its hash replaced", from+k), verify(f.bytes(t)), KindMismatch)

		// The header's from or to moved.
		f = orig.clone()
		field, d := []string{"from", "to"}[rng.IntN(2)], float64(1+rng.IntN(5))
		if rng.IntN(2) == 0 {
			d = -d
		}
		f.header[field] = f.header[field].(float64) + d
		wantKind(fmt.Sprintf("header %s %+v", field, d), verify(f.bytes(t)), KindFormat, KindMismatch, KindMissing)

		// Truncated at a random byte after the header.
		b := orig.bytes(t)
		hl := bytes.IndexByte(b, '\n') + 1
		cut := hl + rng.IntN(len(b)-hl-1)
		wantKind(fmt.Sprintf("truncated at byte %d", cut), verify(b[:cut]), KindMissing, KindFormat, KindMismatch)
	}

	// Re-signed with another key of the same name.
	s2, _ := testKeys(t, testOrigin)
	c, err := ParseCheckpoint(string(bytes.SplitN([]byte(orig.header["checkpoint"].(string)), []byte("\n\n"), 2)[0]) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := SignCheckpoint(c, s2)
	if err != nil {
		t.Fatal(err)
	}
	f := orig.clone()
	f.header["checkpoint"] = string(forged)
	wantKind("re-signed with another key", verify(f.bytes(t)), KindSignature)

	// The checkpoint of another log: signed by the same key (a second
	// log with other events) fails the root; by its own key, the signature.
	for _, other := range []struct {
		name string
		s    note.Signer
		want string
	}{{"same key", s, KindMismatch}, {"its own key", s2, KindSignature}} {
		st2, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close()
		appendLeaves(t, st2, 50000, 3000) // other events, the same size
		cp2, err := NewCheckpointer(st2, NewIntegrator(st2), other.s, CheckpointerOptions{}).Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f := orig.clone()
		f.header["checkpoint"] = string(cp2)
		rep := verify(f.bytes(t))
		wantKind("the checkpoint of another log, "+other.name, rep, other.want)
	}

	// A range hash changed.
	f = orig.clone()
	left := f.header["left"].([]any)
	lh, _ := base64.StdEncoding.DecodeString(left[0].(string))
	lh[0] ^= 1
	left[0] = base64.StdEncoding.EncodeToString(lh)
	wantKind("a left range hash changed", verify(f.bytes(t)), KindMismatch)

	// The header's claims about times are checked against the leaves.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // testEvent i: base + i ms
	for name, change := range map[string]func(map[string]any){
		"oldest":    func(h map[string]any) { h["oldest"] = base.Format(time.RFC3339Nano) },
		"newest":    func(h map[string]any) { h["newest"] = base.Add(time.Hour).Format(time.RFC3339Nano) },
		"keepUntil": func(h map[string]any) { h["keepUntil"] = base.AddDate(5, 0, 0).Format(time.RFC3339Nano) },
	} {
		f := orig.clone()
		change(f.header)
		wantKind("header "+name+" changed", verify(f.bytes(t)), KindFormat)
	}
	k := rng.IntN(to - from)
	f = orig.clone()
	f.header["before"] = base.Add(time.Duration(from+k) * time.Millisecond).Format(time.RFC3339Nano)
	wantLeaf("a cut inside the segment", verify(f.bytes(t)), from+k)
}

// FuzzVerifyArchive: VerifyArchive never panics, and whatever it accepts
// holds, at each index, the leaf the signed checkpoint commits to.
func FuzzVerifyArchive(f *testing.F) {
	s, v := testKeys(f, testOrigin)
	st := buildLog(f, 6, 6, s) // small seeds: the fuzzer slows down on big inputs
	p := NewProver(st)
	cp, err := p.LatestCheckpoint(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	want := map[uint64][]byte{}
	for i := range uint64(6) {
		want[i], _ = p.Leaf(context.Background(), i)
	}
	for _, opt := range []SegmentOptions{{From: 0, UpTo: 6}, {From: 2, UpTo: 5}, {From: 5, UpTo: 6}} {
		seg, err := PlanSegment(context.Background(), p, cp, v, opt)
		if err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		if _, _, err := seg.WriteTo(context.Background(), p, &b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		rep, err := VerifyArchive(bytes.NewReader(file), v)
		if err != nil || !rep.OK() {
			return
		}
		lines := bytes.Split(file, []byte("\n"))
		n := rep.Header.To - rep.Header.From
		for i := range n {
			leaf, err := base64.StdEncoding.DecodeString(string(lines[1+n+i]))
			if err != nil || !bytes.Equal(leaf, want[rep.Header.From+i]) {
				t.Fatalf("accepted a segment whose leaf %d is not the signed one", rep.Header.From+i)
			}
		}
	})
}

// TestArchiveLeafCheck: a leaf that is in the signed log but is not an
// AuditEvent is named by its index, as audit verify names it.
func TestArchiveLeafCheck(t *testing.T) {
	s, v := testKeys(t, testOrigin)
	st := sqliteLog(t, 300, 300, s)
	if err := st.Update(context.Background(), func(w store.Writer) error {
		_, err := w.AppendAudit([]byte(`{"resourceType":"Patient","id":"x"}`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	appendLeaves(t, st, 300, 50)
	p := NewProver(st)
	cp, err := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{}).Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, file := writeSegment(t, p, cp, v, SegmentOptions{From: 100, UpTo: 340})
	rep, err := VerifyArchive(bytes.NewReader(file), v)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problems[0].Index != 300 || rep.Problems[0].Kind != KindLeaf || !rep.RootOK {
		t.Fatalf("problems %v, root ok %v; want leaf 300 not an AuditEvent", rep.Problems, rep.RootOK)
	}
}
