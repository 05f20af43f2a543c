package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
)

// VerifyOptions selects how deep Verify looks.
type VerifyOptions struct {
	// ReadData decrypts and hashes chunks (needs a backup identity).
	ReadData bool
	// Subset is the fraction (0, 1] of distinct chunks read with ReadData,
	// chosen at random; 0 means all.
	Subset float64
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Snapshots  int // snapshots found
	Good       int // snapshots with no damage found
	Chunks     int // distinct chunks referenced by readable manifests
	ChunksRead int // distinct chunks decrypted and hashed
	Damage     []*DamageError
	// Altered lists names written over or deleted after phivault wrote
	// them, on storage that keeps every version: the reads above used the
	// first versions, but someone with write access tried to destroy them.
	Altered []Alteration
}

// OK reports whether nothing was found damaged or altered.
func (r *VerifyReport) OK() bool { return len(r.Damage) == 0 && len(r.Altered) == 0 }

// Verify checks every snapshot of the repository: its manifest decrypts,
// authenticates (MAC under the repository's id key) and names itself; every
// chunk it names exists with the stored size recorded; with ReadData, that
// chunks decrypt, decompress and match their size, hash and keyed id.
// Every damaged (snapshot, file, chunk) is reported; the error is for a
// repository that cannot be read at all.
func (r *Reader) Verify(ctx context.Context, opt VerifyOptions) (*VerifyReport, error) {
	ids, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Snapshots: len(ids)}
	type result struct {
		err  error
		done bool
	}
	checked := map[string]*result{}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := r.Manifest(id)
		if err != nil {
			if errors.Is(err, ErrNoIdentity) {
				return nil, err
			}
			rep.Damage = append(rep.Damage, &DamageError{Snapshot: id, Chunk: -1, Err: errors.Unwrap(err)})
			continue
		}
		good := true
		for _, f := range m.Files {
			for i, c := range f.Chunks {
				res := checked[c.ID]
				if res == nil {
					res = &result{err: statChunk(ctx, r.st, c)}
					checked[c.ID] = res
				}
				if res.err == nil && opt.ReadData && !res.done && sampled(c.ID, opt.Subset) {
					res.done = true
					_, res.err = readChunk(ctx, r.st, r.ids, r.key.IDKey, c)
					if errors.Is(res.err, ErrNoIdentity) {
						return nil, fmt.Errorf("--read-data needs a backup recipient's identity: %w", res.err)
					}
					rep.ChunksRead++
				}
				if res.err != nil {
					good = false
					rep.Damage = append(rep.Damage, &DamageError{Snapshot: id, File: f.Path, Chunk: i, ChunkID: c.ID, Err: res.err})
				}
			}
		}
		if good {
			rep.Good++
		}
	}
	rep.Chunks = len(checked)
	if al, ok := r.st.(AlterationLister); ok {
		if rep.Altered, err = al.Alterations(ctx); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// statChunk checks that a chunk exists with its recorded stored size.
func statChunk(ctx context.Context, st Storage, c Chunk) error {
	if !validID(c.ID) {
		return fmt.Errorf("%w: malformed chunk id", ErrDamaged)
	}
	size, err := st.Size(ctx, chunkPath(c.ID))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: chunk missing", ErrDamaged)
	case err != nil:
		return err
	case size != c.Stored:
		return fmt.Errorf("%w: chunk is %d bytes, the manifest says %d", ErrDamaged, size, c.Stored)
	}
	return nil
}

// sampled picks a chunk for a partial read. The choice is random per run,
// so repeated partial verifies cover the repository.
func sampled(id string, subset float64) bool {
	return subset <= 0 || subset >= 1 || rand.Float64() < subset
}
