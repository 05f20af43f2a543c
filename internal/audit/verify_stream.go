package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// verifyChunk is how many leaves Verify reads per store call.
const verifyChunk = 4096

// chunk is one batch of leaves on its way through the pipeline.
type chunk struct {
	from   int64
	leaves [][]byte
	hashes [][]byte
	bad    []Problem
	done   chan struct{}
}

// stream reads leaves [0, n) from r in order on the calling goroutine,
// hashes and checks them on all CPUs, and feeds the hashes in order to f.
func stream(ctx context.Context, r store.Reader, n int64, f *folder) error {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *chunk, 2*workers)
	order := make(chan *chunk, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				c.hashes = make([][]byte, len(c.leaves))
				for i, l := range c.leaves {
					c.hashes[i] = LeafHash(l)
					if err := checkLeaf(l); err != nil {
						c.bad = append(c.bad, Problem{Kind: KindLeaf, Index: c.from + int64(i), Detail: err.Error()})
					}
				}
				close(c.done)
			}
		}()
	}
	folded := make(chan struct{})
	go func() {
		defer close(folded)
		for c := range order {
			<-c.done
			f.rep.Problems = append(f.rep.Problems, c.bad...)
			for _, h := range c.hashes {
				f.add(h)
			}
		}
	}()
	var (
		err  error
		gaps []Problem
	)
	for from := int64(0); from < n && err == nil; from += verifyChunk {
		if err = ctx.Err(); err != nil {
			break
		}
		to := min(n, from+verifyChunk)
		var leaves [][]byte
		leaves, err = r.AuditLeaves(from, to)
		if errors.Is(err, store.ErrNotFound) {
			err = nil // rows deleted at the end: the short stream is reported
		}
		if err != nil {
			err = fmt.Errorf("audit: verify: %w", err)
			break
		}
		if int64(len(leaves)) < to-from {
			var g int64
			if g, err = firstGap(r, from, to); err != nil {
				break
			}
			gaps = append(gaps, Problem{Kind: KindRows, Index: g, Detail: fmt.Sprintf("row %d is missing (the store returned %d of the leaves [%d, %d))", g, len(leaves), from, to)})
		}
		c := &chunk{from: from, leaves: leaves, done: make(chan struct{})}
		order <- c
		jobs <- c
	}
	close(jobs)
	close(order)
	wg.Wait()
	<-folded
	f.rep.Problems = append(f.rep.Problems, gaps...)
	return err
}

// firstGap returns the first missing row index in [from, to), given that
// the store returned fewer leaves than asked for that range.
func firstGap(r store.Reader, from, to int64) (int64, error) {
	lo, hi := from, to // rows [from, lo) are all present; a gap is in [lo, hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ls, err := r.AuditLeaves(from, mid)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("audit: verify: %w", err)
		}
		if int64(len(ls)) == mid-from {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// locate names the first leaf in [req.from.size, req.target.size) that
// differs from what the signed root commits to, using the stored level-0
// tiles once they are proven (they reproduce the signed root) to hold the
// original leaf hashes.
func locate(ctx context.Context, r store.Reader, req locateReq, rep *Report) error {
	p, s := req.from.size, req.target.size
	kind, what := KindMismatch, "the stored checkpoint"
	if req.missing {
		kind = KindMissing
	}
	if req.target.against {
		kind, what = KindRollback, "the saved checkpoint"
	}
	prob := Problem{Kind: kind, Index: int64(p), Checkpoint: s}
	if orig, ok := originalHashes(r, req); ok {
		n, err := r.AuditSize()
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		end := uint64(max(n, 0))
		for from := p; from < s; from += verifyChunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			to := min(s, from+verifyChunk)
			var leaves [][]byte
			if from < end {
				leaves, err = r.AuditLeaves(int64(from), int64(min(to, end)))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("audit: verify: %w", err)
				}
			}
			for i, l := range leaves {
				if !bytes.Equal(LeafHash(l), orig[from-p+uint64(i)]) {
					prob.Index = int64(from) + int64(i)
					prob.Detail = fmt.Sprintf("leaf differs from the one %s signs (hash %x, signed %x)", what, LeafHash(l)[:8], orig[from-p+uint64(i)][:8])
					rep.add(prob)
					return nil
				}
			}
			if uint64(len(leaves)) < to-from {
				prob.Index = int64(from) + int64(len(leaves))
				prob.Detail = fmt.Sprintf("leaf missing: the log ends or has a gap here, but %s signs %d leaves", what, s)
				rep.add(prob)
				return nil
			}
		}
	}
	prob.Detail = fmt.Sprintf("recomputed root differs from %s: some leaf in [%d, %d) was changed, removed or reordered (the stored hashes were changed too, so the exact leaf cannot be named)", what, p, s)
	if req.missing {
		prob.Detail = fmt.Sprintf("the log is shorter than %s (%d leaves) and a leaf in [%d, %d) may differ too (the stored hashes were changed, so the exact leaf cannot be named)", what, s, p, s)
	}
	rep.add(prob)
	return nil
}

// originalHashes returns the leaf hashes [from.size, target.size) from the
// stored tiles if, appended to the trusted range at from.size, they
// reproduce the signed root.
func originalHashes(r store.Reader, req locateReq) ([][]byte, bool) {
	p, s := req.from.size, req.target.size
	rng, err := rangeFactory.NewRange(0, p, append([][]byte(nil), req.from.hashes...))
	if err != nil {
		return nil, false
	}
	nr := nodeReader{r: r}
	hs := make([][]byte, 0, s-p)
	for i := p; i < s; {
		base := i / tileWidth * tileWidth
		t, err := nr.tile(0, i/tileWidth)
		if err != nil {
			return nil, false
		}
		for ; i < s && i < base+uint64(len(t)/hashSize); i++ {
			off := (i % tileWidth) * hashSize
			hs = append(hs, t[off:off+hashSize])
			_ = rng.Append(t[off:off+hashSize], nil)
		}
		if i < s && i%tileWidth != 0 {
			return nil, false // partial tile ends before s
		}
	}
	root, _ := rng.GetRootHash(nil)
	return hs, bytes.Equal(root, req.target.root)
}
