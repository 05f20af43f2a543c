package audit

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/phivault/phivault/internal/store"
)

// memMeta is metadata held in memory, for rebuilding the index.
type memMeta map[string][]byte

func (m memMeta) Meta(key string) ([]byte, error) {
	if b, ok := m[key]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%w: %s", store.ErrNotFound, key)
}

// VerifyIndex rebuilds the leaf index from the leaves it claims to cover
// and compares it, key by key, with the stored one. It returns nil if they
// are identical, otherwise an error naming the first key that differs
// (so a tampered or stale index is detected; the leaves themselves are
// checked against the tree by Verify). Its cost is a full read of the log.
func VerifyIndex(ctx context.Context, r store.Reader) error {
	n, err := readIndexSize(r)
	if err != nil {
		return err
	}
	built := memMeta{}
	for from := uint64(0); from < n; from += integrateBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		to := min(n, from+integrateBatch)
		leaves, err := r.AuditLeaves(int64(from), int64(to))
		if err != nil {
			return fmt.Errorf("audit: verify index: leaves [%d, %d): %w", from, to, err)
		}
		if uint64(len(leaves)) != to-from {
			return fmt.Errorf("audit: verify index: store returned %d leaves for [%d, %d)", len(leaves), from, to)
		}
		ws, err := indexBatch(built, from, leaves)
		if err != nil {
			return err
		}
		for k, v := range ws {
			built[k] = v
		}
	}
	if n == 0 {
		delete(built, keyIndexSize)
	}
	stored, err := r.MetaPrefix(prefixIndex)
	if err != nil {
		return fmt.Errorf("audit: verify index: %w", err)
	}
	seen := map[string]bool{}
	for _, kv := range stored {
		seen[kv.Key] = true
		want, ok := built[kv.Key]
		switch {
		case !ok && kv.Key == keyIndexSize && n == 0:
		case !ok:
			return fmt.Errorf("audit: verify index: stored key %s is not in the rebuilt index", kv.Key)
		case !bytes.Equal(want, kv.Value):
			return fmt.Errorf("audit: verify index: key %s differs from the rebuilt index", kv.Key)
		}
	}
	var missing []string
	for k := range built {
		if !seen[k] && strings.HasPrefix(k, prefixIndex) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("audit: verify index: key %s of the rebuilt index is not stored (%d missing)", missing[0], len(missing))
	}
	return nil
}
