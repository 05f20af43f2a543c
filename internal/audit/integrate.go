package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/phivault/phivault/internal/store"
	"github.com/transparency-dev/merkle/compact"
)

// ErrConcurrentIntegration means the stored tree state changed while an
// Integrator was extending it: two integrators run against one store. Only
// one process (the one holding the data directory) may integrate.
var ErrConcurrentIntegration = errors.New("audit: tree state changed during integration")

// integrateBatch bounds the leaves hashed per store transaction, so that a
// large backlog (after an import or a restore) does not hold one long
// write transaction.
const integrateBatch = 1 << 15

// Tree is the size and root hash of the integrated Merkle tree.
type Tree struct {
	Size uint64
	Root []byte
}

// Integrator extends the stored Merkle tree with the leaves appended since
// the last integration. Its state (the compact range of the integrated
// tree and the tiles) lives in the store's metadata, so a restart resumes
// where it stopped without rehashing the log. Integrate is safe for
// concurrent use; only one Integrator may write to a store at a time.
type Integrator struct {
	st store.Backend
	mu sync.Mutex
	// noIndex leaves the leaf index out, for benchmarks that measure its
	// cost only; it is never set outside this package's tests.
	noIndex bool
}

// NewIntegrator returns an Integrator over st.
func NewIntegrator(st store.Backend) *Integrator { return &Integrator{st: st} }

// Integrate hashes every leaf appended before the call into the tree and
// returns the resulting tree. It is idempotent: with no new leaves it only
// reads. On error the stored tree is unchanged or extended by whole
// batches, never corrupted.
func (in *Integrator) Integrate(ctx context.Context) (Tree, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		t, more, err := in.step(ctx)
		if err != nil || !more {
			return t, err
		}
	}
}

// step integrates at most integrateBatch leaves: it reads, hashes and
// indexes them in a snapshot, then writes the tiles, the leaf index and
// the state in one transaction that first checks the state it started
// from is still current (so the index always covers the integrated tree).
func (in *Integrator) step(ctx context.Context) (Tree, bool, error) {
	var (
		old   []byte
		oldIx uint64
		next  treeState
		tiles map[[2]uint64][]byte
		ix    map[string][]byte // index keys, written with the tiles
		more  bool
	)
	err := in.st.View(ctx, func(r store.Reader) error {
		s, raw, err := readTreeState(r)
		if err != nil {
			return err
		}
		old, next = raw, s
		ixSize, err := readIndexSize(r)
		if err != nil {
			return err
		}
		oldIx = ixSize
		if ixSize > s.size {
			return fmt.Errorf("audit: integrate: the index covers %d leaves, the tree %d", ixSize, s.size)
		}
		if ixSize < s.size && !in.noIndex {
			// A tree integrated before the index existed: index it first,
			// a batch per step, then extend both together.
			ix, err = indexLeaves(r, ixSize, min(s.size, ixSize+integrateBatch))
			more = true
			return err
		}
		n, err := r.AuditSize()
		if err != nil {
			return fmt.Errorf("audit: integrate: %w", err)
		}
		if uint64(n) < s.size {
			return fmt.Errorf("audit: integrate: store has %d leaves, tree has %d: leaves were removed", n, s.size)
		}
		to := min(uint64(n), s.size+integrateBatch)
		more = to < uint64(n)
		if to == s.size {
			return nil
		}
		leaves, err := r.AuditLeaves(int64(s.size), int64(to))
		if err != nil {
			return fmt.Errorf("audit: integrate: %w", err)
		}
		if uint64(len(leaves)) != to-s.size {
			return fmt.Errorf("audit: integrate: store returned %d leaves for [%d, %d)", len(leaves), s.size, to)
		}
		if next, tiles, err = extend(r, s, leaves); err != nil {
			return err
		}
		if in.noIndex {
			return nil
		}
		ix, err = indexBatch(r, s.size, leaves)
		return err
	})
	if err != nil {
		return Tree{}, false, err
	}
	t := Tree{Size: next.size, Root: next.root()}
	if tiles == nil && ix == nil {
		return t, more, nil
	}
	err = in.st.Update(ctx, func(w store.Writer) error {
		cur, err := w.Meta(keyTree)
		if errors.Is(err, store.ErrNotFound) {
			cur, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("audit: integrate: %w", err)
		}
		if !bytes.Equal(cur, old) {
			return ErrConcurrentIntegration
		}
		if n, err := readIndexSize(w); err != nil || n != oldIx && !in.noIndex {
			return cmp.Or(err, ErrConcurrentIntegration)
		}
		for k, v := range tiles {
			if err := w.SetMeta(tileKey(k[0], k[1]), v); err != nil {
				return fmt.Errorf("audit: integrate: %w", err)
			}
		}
		for k, v := range ix {
			if err := w.SetMeta(k, v); err != nil {
				return fmt.Errorf("audit: integrate: index: %w", err)
			}
		}
		if err := w.SetMeta(keyTree, next.encode()); err != nil {
			return fmt.Errorf("audit: integrate: %w", err)
		}
		return nil
	})
	if err != nil {
		return Tree{}, false, err
	}
	return t, more, nil
}

// extend appends leaves to the tree s and returns the new state and every
// tile it changed (in full). r supplies the partial tiles being extended.
func extend(r store.Reader, s treeState, leaves [][]byte) (treeState, map[[2]uint64][]byte, error) {
	rng, err := rangeFactory.NewRange(0, s.size, s.hashes)
	if err != nil {
		return treeState{}, nil, err
	}
	tiles := map[[2]uint64][]byte{}
	var verr error
	visit := func(id compact.NodeID, h []byte) {
		if id.Level%tileHeight != 0 || verr != nil {
			return
		}
		k := [2]uint64{uint64(id.Level / tileHeight), id.Index / tileWidth}
		t, ok := tiles[k]
		if !ok {
			b, err := r.Meta(tileKey(k[0], k[1]))
			switch {
			case errors.Is(err, store.ErrNotFound):
				b = make([]byte, 0, tileWidth*hashSize)
			case err != nil:
				verr = fmt.Errorf("audit: integrate: %w", err)
				return
			default:
				b = append(make([]byte, 0, tileWidth*hashSize), b...)
			}
			t = b
		}
		if uint64(len(t)) != (id.Index%tileWidth)*hashSize {
			verr = fmt.Errorf("audit: integrate: tile %d/%d has %d bytes, expected node %d next", k[0], k[1], len(t), id.Index%tileWidth)
			return
		}
		tiles[k] = append(t, h...)
	}
	for _, l := range leaves {
		if err := rng.Append(hasher.HashLeaf(l), visit); err != nil {
			return treeState{}, nil, err
		}
		if verr != nil {
			return treeState{}, nil, verr
		}
	}
	return treeState{size: rng.End(), hashes: rng.Hashes()}, tiles, nil
}
