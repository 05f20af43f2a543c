package audit

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
	"github.com/transparency-dev/merkle/proof"
)

// TestIntegrateAndProve grows a log in uneven steps across tile
// boundaries, restarting the integrator, and checks every root against a
// naive RFC 9162 implementation and every proof with the library verifier.
func TestIntegrateAndProve(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	var leaves [][]byte
	p := NewProver(st)
	rng := rand.New(rand.NewPCG(1, 2))
	var roots [][]byte // roots[s] = reference root at size s
	roots = append(roots, mth(nil))
	for step := 0; len(leaves) < 1100; step++ {
		n := rng.IntN(300)
		appendLeaves(t, st, len(leaves), n)
		for k := 0; k < n; k++ {
			leaves = append(leaves, testEvent(len(leaves)).Leaf())
			roots = append(roots, mth(leaves))
		}
		tr, err := NewIntegrator(st).Integrate(ctx) // a fresh integrator: resumes from the store
		if err != nil {
			t.Fatal(err)
		}
		if tr.Size != uint64(len(leaves)) || !bytes.Equal(tr.Root, roots[len(leaves)]) {
			t.Fatalf("step %d: tree %d %x, want %d %x", step, tr.Size, tr.Root, len(leaves), roots[len(leaves)])
		}
	}
	for size := uint64(0); size <= uint64(len(leaves)); size += 1 + uint64(rng.IntN(40)) {
		got, err := p.RootAt(ctx, size)
		if err != nil || !bytes.Equal(got, roots[size]) {
			t.Fatalf("RootAt(%d) = %x, %v; want %x", size, got, err, roots[size])
		}
		for i := 0; i < 5 && size > 0; i++ {
			idx := rng.Uint64N(size)
			prf, err := p.InclusionProof(ctx, idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(hasher, idx, size, LeafHash(leaves[idx]), prf, roots[size]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
		}
		s1 := rng.Uint64N(size + 1)
		prf, err := p.ConsistencyProof(ctx, s1, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher, s1, size, prf, roots[s1], roots[size]); err != nil {
			t.Fatalf("consistency %d -> %d: %v", s1, size, err)
		}
	}
	if _, err := p.InclusionProof(ctx, 0, uint64(len(leaves))+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("proof beyond the integrated tree: %v, want ErrTooLarge", err)
	}
}

// TestProofsLargeTree checks proofs in a tree with level-16 nodes (tile
// level 2) against roots computed by a compact range.
func TestProofsLargeTree(t *testing.T) {
	if testing.Short() {
		t.Skip("large tree")
	}
	ctx := context.Background()
	st := memstore.New()
	const n = 70_000
	appendLeaves(t, st, 0, n)
	if _, err := NewIntegrator(st).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	_ = st.View(ctx, func(r store.Reader) error {
		ls, err := r.AuditLeaves(0, n)
		for _, l := range ls {
			hashes = append(hashes, LeafHash(l))
		}
		return err
	})
	rootAt := func(size uint64) []byte {
		r := rangeFactory.NewEmptyRange(0)
		for _, h := range hashes[:size] {
			_ = r.Append(h, nil)
		}
		root, _ := r.GetRootHash(nil)
		if size == 0 {
			root = hasher.EmptyRoot()
		}
		return root
	}
	p := NewProver(st)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []uint64{n, 65536, 65537, 69_999, 256 * 256 * 1, 1 + rng.Uint64N(n)} {
		root := rootAt(size)
		for range 20 {
			idx := rng.Uint64N(size)
			prf, err := p.InclusionProof(ctx, idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(hasher, idx, size, hashes[idx], prf, root); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
		}
		s1 := rng.Uint64N(size + 1)
		prf, err := p.ConsistencyProof(ctx, s1, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher, s1, size, prf, rootAt(s1), root); err != nil {
			t.Fatalf("consistency %d -> %d: %v", s1, size, err)
		}
	}
}

// TestIntegrateDetectsRemovedLeaves: the integrator refuses a log that
// shrank below the integrated tree.
func TestIntegrateDetectsRemovedLeaves(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	appendLeaves(t, st, 0, 10)
	if _, err := NewIntegrator(st).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	st.Tamper(func(l [][]byte, _ map[string][]byte) [][]byte { return l[:5] })
	if _, err := NewIntegrator(st).Integrate(ctx); err == nil {
		t.Fatal("integrating a log shorter than the tree succeeded")
	}
}

func TestLogRecordIntegrates(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	l := NewLog(st, 0)
	for i := range 10 {
		if err := l.Record(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	st.FailUpdates = errors.New("disk full")
	if err := l.Record(ctx, testEvent(10)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record on a failing store: %v, want ErrUnavailable", err)
	}
	st.FailUpdates = nil
	tr, err := NewIntegrator(st).Integrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 10 {
		want = append(want, testEvent(i).Leaf())
	}
	if tr.Size != 10 || !bytes.Equal(tr.Root, mth(want)) {
		t.Fatalf("tree %d %x, want 10 %x", tr.Size, tr.Root, mth(want))
	}
}
