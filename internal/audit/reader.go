package audit

import (
	"context"
	"fmt"

	"github.com/phivault/phivault/internal/store"
)

// Prover returns a Prover over the log's store, for serving checkpoints,
// leaves and proofs next to the appends. Each Prover has its own tile
// cache; keep one for as long as proofs are served.
func (l *Log) Prover() *Prover { return NewProver(l.st) }

// Size returns the number of leaves appended so far (integrated or not).
func (p *Prover) Size(ctx context.Context) (uint64, error) {
	var n int64
	err := p.st.View(ctx, func(r store.Reader) (err error) {
		n, err = r.AuditSize()
		return err
	})
	return uint64(n), err
}

// ScanLeaves calls fn for each leaf with index in [from, to), in order,
// reading batch leaves per snapshot so that a long scan holds no single
// read transaction. It stops at fn's first error or when ctx ends.
func (p *Prover) ScanLeaves(ctx context.Context, from, to uint64, batch int, fn func(index uint64, leaf []byte) error) error {
	if batch <= 0 {
		batch = 4096
	}
	for i := from; i < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(to, i+uint64(batch))
		var ls [][]byte
		if err := p.st.View(ctx, func(r store.Reader) (err error) {
			ls, err = r.AuditLeaves(int64(i), int64(end))
			return err
		}); err != nil {
			return fmt.Errorf("audit: leaves [%d, %d): %w", i, end, err)
		}
		if uint64(len(ls)) != end-i {
			return fmt.Errorf("audit: leaves [%d, %d): the store returned %d: rows are missing (run phivault audit verify)", i, end, len(ls))
		}
		for _, l := range ls {
			if err := fn(i, l); err != nil {
				return err
			}
			i++
		}
	}
	return nil
}
