package audit

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// proofBatch bounds the proofs computed per store snapshot.
const proofBatch = 4096

// InclusionProofs returns the RFC 9162 inclusion proofs of the leaves at
// indexes (each below size) in the tree of the given size (<= the
// integrated size), in the order of indexes. It answers many proofs at a
// fraction of the cost of as many InclusionProof calls: the node hashes
// the proofs share (every node above the leaves' common subtrees, and the
// inner nodes of each tile) are read or hashed once.
func (p *Prover) InclusionProofs(ctx context.Context, indexes []uint64, size uint64) ([][][]byte, error) {
	out := make([][][]byte, len(indexes))
	memo := map[compact.NodeID][]byte{}
	for from := 0; from < len(indexes); from += proofBatch {
		batch := indexes[from:min(len(indexes), from+proofBatch)]
		err := p.view(ctx, size, func(nr nodeReader) error {
			mn := memoNodes{nr: nr, memo: memo}
			for k, i := range batch {
				if i >= size {
					return fmt.Errorf("audit: inclusion proof: index %d not below size %d", i, size)
				}
				nodes, err := proof.Inclusion(i, size)
				if err != nil {
					return err
				}
				hs := make([][]byte, len(nodes.IDs))
				for j, id := range nodes.IDs {
					if hs[j], err = mn.node(id); err != nil {
						return err
					}
				}
				if out[from+k], err = nodes.Rehash(hs, hasher.HashChildren); err != nil {
					return err
				}
			}
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// memoNodes computes complete node hashes from tiles, remembering every
// hash it computes. Complete nodes never change, so the memo is valid for
// any size that contains them.
type memoNodes struct {
	nr   nodeReader
	memo map[compact.NodeID][]byte
}

func (m memoNodes) node(id compact.NodeID) ([]byte, error) {
	if h, ok := m.memo[id]; ok {
		return h, nil
	}
	var h []byte
	if id.Level%tileHeight == 0 {
		t, err := m.nr.tile(uint64(id.Level/tileHeight), id.Index/tileWidth)
		if err != nil {
			return nil, err
		}
		off := (id.Index % tileWidth) * hashSize
		if uint64(len(t)) < off+hashSize {
			return nil, fmt.Errorf("audit: tile %d/%d: too short for node %d/%d", id.Level/tileHeight, id.Index/tileWidth, id.Level, id.Index)
		}
		h = t[off : off+hashSize : off+hashSize]
	} else {
		l, err := m.node(compact.NewNodeID(id.Level-1, 2*id.Index))
		if err != nil {
			return nil, err
		}
		r, err := m.node(compact.NewNodeID(id.Level-1, 2*id.Index+1))
		if err != nil {
			return nil, err
		}
		h = hasher.HashChildren(l, r)
	}
	m.memo[id] = h
	return h, nil
}
