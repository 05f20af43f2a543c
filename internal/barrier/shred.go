package barrier

import (
	"context"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// Destroyed keys and the caches of other processes.
//
// Destroy and DestroyID write, in the same transaction as the destruction,
// a marker DestroyedPrefix + "<hex id>" (value: the destruction time).
// Every process sharing the store (several nodes on one PostgreSQL) learns
// of a destruction by listing the markers (SyncDestroyed, run by
// WatchDestroyed: at once when told by NoteDestroyed, say from a store
// change notification of a marker's write, and every interval in any
// case), and drops the key from its cache. The markers grow with
// erasures only, so the listing stays small; a marker names a random key
// id and nothing else.
//
// Within one process, forget records a destroyed id in the cache, whose
// put refuses it from then on: a request that read the wrapped key just
// before the destruction cannot cache it, or use it, afterwards.

// DestroyedPrefix starts the metadata key of every destruction marker.
const DestroyedPrefix = "destroyed/"

const metaDestroyed = DestroyedPrefix // + hex key id -> RFC 3339 time

func markDestroyed(tx store.Writer, id KeyID) error {
	return tx.SetMeta(metaDestroyed+id.String(), []byte(time.Now().UTC().Format(time.RFC3339)))
}

// forget makes id unusable in this process: later unwraps of it fail with
// ErrKeyDestroyed and the cached copy is zeroed. It reports whether id was
// not known destroyed before.
func (b *Barrier) forget(id KeyID) bool { return b.cache.forget(id) }

// SyncDestroyed drops from this barrier's cache every key destroyed by any
// process sharing the store, and returns how many it had not yet known of.
// It is cheap (one listing of the destruction markers) and safe to call at
// any time and concurrently.
func (b *Barrier) SyncDestroyed(ctx context.Context) (int, error) {
	if b.closed.Load() {
		return 0, ErrClosed
	}
	var kvs []store.KV
	err := b.st.View(ctx, func(r store.Reader) error {
		var err error
		kvs, err = r.MetaPrefix(metaDestroyed)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range kvs {
		raw, err := hex.DecodeString(kv.Key[len(metaDestroyed):])
		if err != nil || len(raw) != KeyIDSize {
			continue // not ours; nothing to drop
		}
		if b.forget(KeyID(raw)) {
			n++
		}
	}
	return n, nil
}

// NoteDestroyed tells WatchDestroyed to run SyncDestroyed now (a marker
// was written, or notifications may have been missed). It never blocks.
func (b *Barrier) NoteDestroyed() {
	select {
	case b.wake <- struct{}{}:
	default: // a sync is already due
	}
}

// WatchDestroyed runs SyncDestroyed every interval and whenever
// NoteDestroyed is called, until ctx ends, so that an erasure made by
// another node takes effect here within one interval at most.
// Failures are logged (without key material) and retried at the next tick;
// a sealed (closed) barrier is skipped.
func (b *Barrier) WatchDestroyed(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.wake:
		}
		if b.closed.Load() {
			continue
		}
		if n, err := b.SyncDestroyed(ctx); err != nil && ctx.Err() == nil {
			log.Warn("cannot list destroyed data keys; retrying", "err", err.Error())
		} else if n > 0 {
			log.Info("data keys destroyed by another node dropped from the cache", "keys", n)
		}
	}
}
