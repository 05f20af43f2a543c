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
	memo := map[[2]uint64]*tileNodes{}
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

// memoNodes computes complete node hashes from tiles: the first time a
// tile is needed, every complete node inside it (the tile's entries and
// the 127 nodes above them, fewer in a partial tile) is hashed once and
// kept, so a node costs one lookup afterwards. Complete nodes never
// change, so the memo is valid for any size that contains them.
type memoNodes struct {
	nr   nodeReader
	memo map[[2]uint64]*tileNodes
}

// tileNodes holds the nodes inside one tile: at[h] are the complete nodes
// h levels above the tile's level, left to right.
type tileNodes struct {
	at [tileHeight][][]byte
}

func (m memoNodes) node(id compact.NodeID) ([]byte, error) {
	tl, h := uint64(id.Level/tileHeight), id.Level%tileHeight
	first := id.Index << h
	k := [2]uint64{tl, first / tileWidth}
	tn, ok := m.memo[k]
	if !ok {
		t, err := m.nr.tile(k[0], k[1])
		if err != nil {
			return nil, err
		}
		tn = &tileNodes{}
		for p := 0; p+hashSize <= len(t); p += hashSize {
			tn.at[0] = append(tn.at[0], t[p:p+hashSize:p+hashSize])
		}
		for lv := 1; lv < tileHeight; lv++ {
			below := tn.at[lv-1]
			for j := 0; j+1 < len(below); j += 2 {
				tn.at[lv] = append(tn.at[lv], hasher.HashChildren(below[j], below[j+1]))
			}
		}
		m.memo[k] = tn
	}
	j := (first % tileWidth) >> h
	if j >= uint64(len(tn.at[h])) {
		return nil, fmt.Errorf("audit: tile %d/%d: too short for node %d/%d", k[0], k[1], id.Level, id.Index)
	}
	return tn.at[h][j], nil
}
