package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/phivault/phivault/internal/store"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// ErrNoCheckpoint means no checkpoint has been signed yet.
var ErrNoCheckpoint = errors.New("audit: no checkpoint yet")

// Prover answers proof requests from the stored tiles, without rehashing
// the log: a proof costs a few metadata reads (full tiles are cached) and
// at most a few thousand hashes. It is safe for concurrent use. Proofs are
// for sizes up to the integrated tree; ask for the size of a checkpoint
// (LatestCheckpoint) so the client can verify against a signed root.
type Prover struct {
	st    store.Backend
	cache tileCache
}

// NewProver returns a Prover over st.
func NewProver(st store.Backend) *Prover { return &Prover{st: st} }

// LatestCheckpoint returns the most recent signed checkpoint, or
// ErrNoCheckpoint.
func (p *Prover) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var out []byte
	err := p.st.View(ctx, func(r store.Reader) error {
		b, err := r.Meta(keyLatest)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoCheckpoint
		}
		out = b
		return err
	})
	return out, err
}

// Checkpoint returns the signed checkpoint stored for size, wrapping
// store.ErrNotFound if none was signed at that size.
func (p *Prover) Checkpoint(ctx context.Context, size uint64) ([]byte, error) {
	var out []byte
	err := p.st.View(ctx, func(r store.Reader) (err error) {
		out, err = r.Meta(checkpointKey(size))
		return err
	})
	return out, err
}

// Leaf returns the stored leaf at index.
func (p *Prover) Leaf(ctx context.Context, index uint64) ([]byte, error) {
	var out []byte
	err := p.st.View(ctx, func(r store.Reader) error {
		ls, err := r.AuditLeaves(int64(index), int64(index)+1)
		if err != nil {
			return err
		}
		if len(ls) != 1 {
			return fmt.Errorf("%w: audit leaf %d", store.ErrNotFound, index)
		}
		out = ls[0]
		return nil
	})
	return out, err
}

// InclusionProof returns the RFC 9162 inclusion proof of leaf index in the
// tree of the given size (index < size <= integrated size).
func (p *Prover) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("audit: inclusion proof: index %d not below size %d", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return p.prove(ctx, size, nodes)
}

// ConsistencyProof returns the RFC 9162 consistency proof between the
// trees of size1 and size2 (size1 <= size2 <= integrated size).
func (p *Prover) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %v", err)
	}
	return p.prove(ctx, size2, nodes)
}

// RootAt returns the root hash of the tree of the given size, computed
// from tiles (size <= integrated size).
func (p *Prover) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	var out []byte
	err := p.view(ctx, size, func(nr nodeReader) (err error) {
		out, err = nr.rootAt(size)
		return err
	})
	return out, err
}

func (p *Prover) prove(ctx context.Context, size uint64, nodes proof.Nodes) ([][]byte, error) {
	var out [][]byte
	err := p.view(ctx, size, func(nr nodeReader) error {
		hs, err := nr.nodes(nodes.IDs)
		if err != nil {
			return err
		}
		out, err = nodes.Rehash(hs, hasher.HashChildren)
		return err
	})
	return out, err
}

// view runs fn with a node reader once it has checked that size is
// integrated.
func (p *Prover) view(ctx context.Context, size uint64, fn func(nodeReader) error) error {
	return p.st.View(ctx, func(r store.Reader) error {
		s, _, err := readTreeState(r)
		if err != nil {
			return err
		}
		if size > s.size {
			return fmt.Errorf("%w: %d > %d", ErrTooLarge, size, s.size)
		}
		return fn(nodeReader{r: r, cache: &p.cache})
	})
}

// VerifyInclusion checks, offline and with only the public key, that leaf
// is the entry at index of the log whose signed checkpoint is given. It
// returns the checkpoint on success.
func VerifyInclusion(leaf []byte, index uint64, checkpoint []byte, prf [][]byte, v note.Verifier) (Checkpoint, error) {
	c, err := OpenCheckpoint(checkpoint, v)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := proof.VerifyInclusion(hasher, index, c.Size, LeafHash(leaf), prf, c.Root); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: inclusion of leaf %d in tree %d: %w", index, c.Size, err)
	}
	return c, nil
}

// VerifyConsistency checks, offline and with only the public key, that the
// log of checkpoint newer extends the log of checkpoint older (the first
// older.Size entries are unchanged). Either order of sizes is accepted as
// long as older is not larger.
func VerifyConsistency(older, newer []byte, prf [][]byte, v note.Verifier) error {
	c1, err := OpenCheckpoint(older, v)
	if err != nil {
		return err
	}
	c2, err := OpenCheckpoint(newer, v)
	if err != nil {
		return err
	}
	if c1.Size > c2.Size {
		return fmt.Errorf("audit: consistency: older checkpoint has size %d > %d", c1.Size, c2.Size)
	}
	if err := proof.VerifyConsistency(hasher, c1.Size, c2.Size, prf, c1.Root, c2.Root); err != nil {
		return fmt.Errorf("audit: consistency %d -> %d: %w", c1.Size, c2.Size, err)
	}
	return nil
}
