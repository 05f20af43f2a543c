package barrier

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// Errors of the key lifecycle.
var (
	// ErrNoKey: Destroy found no data key of that name (it was never used).
	ErrNoKey = errors.New("barrier: no data key of that name")
	// ErrClosed: the barrier was closed (sealed); its keys are gone.
	ErrClosed = errors.New("barrier: closed (sealed); its keys were wiped")
)

// Versioned is implemented by a KEK with several versions. Current names
// the KEK version that Wrap uses now, as Wrapped.KEK spells it.
type Versioned interface {
	Current() string
}

// Destroy crypto-shreds the data key called name: its record keeps only the
// creation and destruction times (the wrapped key is removed), and the
// unwrapped key is dropped from the cache and zeroed. Everything sealed
// under it then fails with ErrKeyDestroyed, and so does any later Seal
// under that name: an erased compartment stays closed. Destroy is
// idempotent and returns the key id (for the shredded-keys list). It does
// not create a key: a name never used gives ErrNoKey. The index key cannot
// be destroyed.
//
// The functions in with run in the same transaction (say, to append the
// audit record of the erasure): if one fails, nothing is destroyed. They
// may run more than once (see store.Backend.Update).
//
// The key is dropped from this barrier's cache at once, also when a
// concurrent Open was unwrapping it meanwhile. Other processes sharing the
// store (nodes on one PostgreSQL) drop it at their next SyncDestroyed (see
// WatchDestroyed).
func (b *Barrier) Destroy(ctx context.Context, name string, with ...func(store.Writer) error) (KeyID, error) {
	var id KeyID
	if b.closed.Load() {
		return id, ErrClosed
	}
	if name == indexName {
		return id, errors.New("barrier: the index key cannot be destroyed")
	}
	mapKey := metaKeyName + hex.EncodeToString(b.Token("keyname", name))
	err := b.st.Update(ctx, func(tx store.Writer) error {
		v, err := tx.Meta(mapKey)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoKey
		}
		if err != nil {
			return err
		}
		copy(id[:], v)
		raw, err := tx.Meta(metaKey + id.String())
		if err != nil {
			return fmt.Errorf("barrier: data key %s record: %w", id, err)
		}
		var rec keyRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("barrier: data key %s record: %w", id, ErrMalformed)
		}
		if rec.Wrapped == nil && !rec.Destroyed.IsZero() {
			return nil // already destroyed
		}
		rec.Wrapped = nil
		if rec.Destroyed.IsZero() {
			rec.Destroyed = time.Now().UTC()
		}
		out, _ := json.Marshal(rec)
		if err := tx.SetMeta(metaKey+id.String(), out); err != nil {
			return err
		}
		if err := markDestroyed(tx, id); err != nil {
			return err
		}
		for _, fn := range with {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return KeyID{}, err
	}
	b.forget(id)
	return id, nil
}

// DestroyID destroys a data key by id, as listed in a shredded-keys file:
// a restore from a backup taken before an erasure calls it for every
// listed id so that the erasure holds. Unknown ids are skipped (the key
// was created after the backup) and reported by found = false.
func (b *Barrier) DestroyID(ctx context.Context, id KeyID) (found bool, err error) {
	if b.closed.Load() {
		return false, ErrClosed
	}
	err = b.st.Update(ctx, func(tx store.Writer) error {
		found = false
		raw, err := tx.Meta(metaKey + id.String())
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		var rec keyRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("barrier: data key %s record: %w", id, ErrMalformed)
		}
		if rec.Wrapped == nil && !rec.Destroyed.IsZero() {
			return nil
		}
		rec.Wrapped = nil
		if rec.Destroyed.IsZero() {
			rec.Destroyed = time.Now().UTC()
		}
		out, _ := json.Marshal(rec)
		if err := tx.SetMeta(metaKey+id.String(), out); err != nil {
			return err
		}
		return markDestroyed(tx, id)
	})
	if err == nil && found {
		b.forget(id)
	}
	return found, err
}

// Close wipes the barrier's keys from memory: every cached data key and the
// index key are zeroed, and every later call fails with ErrClosed (Token
// returns a token that matches nothing). Sealing a server closes its
// barrier; unsealing opens a new one. (Go cannot wipe the AES and HMAC
// states it derived from the keys; they become garbage.)
func (b *Barrier) Close() {
	b.closed.Store(true)
	b.hmacs.Store(hmacPool(nil)) // drop the keyed HMAC states
	b.cache.purge()
	b.mu.Lock()
	clear(b.index)
	clear(b.names)
	b.mu.Unlock()
}

// Reopen undoes Close once the KEK can unwrap again (after unsealing): it
// unwraps the index key anew. Until it succeeds the barrier stays closed.
func (b *Barrier) Reopen(ctx context.Context) error {
	if !b.closed.Load() {
		return nil
	}
	var raw []byte
	err := b.st.View(ctx, func(r store.Reader) error {
		v, err := r.Meta(metaKeyName + indexName)
		if err != nil {
			return err
		}
		var id KeyID
		copy(id[:], v)
		raw, err = r.Meta(metaKey + id.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("barrier: index key: %w", err)
	}
	var rec keyRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Wrapped == nil {
		return fmt.Errorf("barrier: index key record: %w", ErrMalformed)
	}
	dek, err := b.kek.Unwrap(ctx, *rec.Wrapped)
	if err != nil {
		return fmt.Errorf("barrier: index key: %w", err)
	}
	b.mu.Lock()
	b.index = dek
	b.mu.Unlock()
	b.hmacs.Store(hmacPool(dek))
	b.closed.Store(false)
	return nil
}

// KEKUsage counts the live data keys wrapped by each KEK version (by the
// Wrapped.KEK name), and the destroyed ones under "destroyed".
func (b *Barrier) KEKUsage(ctx context.Context) (map[string]int, error) {
	recs, err := b.records(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, r := range recs {
		if r.rec.Wrapped == nil || !r.rec.Destroyed.IsZero() {
			out["destroyed"]++
			continue
		}
		out[r.rec.Wrapped.KEK]++
	}
	return out, nil
}

// Destroyed lists the ids of destroyed data keys, for a backup or an audit
// of erasures.
func (b *Barrier) Destroyed(ctx context.Context) ([]KeyID, error) {
	recs, err := b.records(ctx)
	if err != nil {
		return nil, err
	}
	var out []KeyID
	for _, r := range recs {
		if r.rec.Wrapped == nil || !r.rec.Destroyed.IsZero() {
			out = append(out, r.id)
		}
	}
	return out, nil
}

type storedRecord struct {
	id  KeyID
	raw []byte
	rec keyRecord
}

func (b *Barrier) records(ctx context.Context) ([]storedRecord, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	var kvs []store.KV
	err := b.st.View(ctx, func(r store.Reader) error {
		var err error
		kvs, err = r.MetaPrefix(metaKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]storedRecord, 0, len(kvs))
	for _, kv := range kvs {
		var s storedRecord
		idb, err := hex.DecodeString(kv.Key[len(metaKey):])
		if err != nil || len(idb) != KeyIDSize {
			return nil, fmt.Errorf("barrier: key record %q: %w", kv.Key, ErrMalformed)
		}
		copy(s.id[:], idb)
		if err := json.Unmarshal(kv.Value, &s.rec); err != nil {
			return nil, fmt.Errorf("barrier: data key %s record: %w", s.id, ErrMalformed)
		}
		s.raw = kv.Value
		out = append(out, s)
	}
	return out, nil
}

// Rewrap wraps every live data key that the KEK's current version did not
// wrap under the current version (KEK rotation), and returns how many it
// rewrapped. It is RewrapProgress without a progress report.
func (b *Barrier) Rewrap(ctx context.Context) (int, error) {
	return b.RewrapProgress(ctx, nil)
}

// RewrapProgress is Rewrap that calls progress (when not nil) once with
// the number of keys to rewrap before it starts and again after each
// committed batch, with the number rewrapped so far. It runs alongside reads and writes: each record is replaced
// only if it has not changed since it was read (a key destroyed meanwhile
// stays destroyed), and the unwrapped data keys themselves never change,
// so sealed data and cached keys stay valid. The KEK must implement
// Versioned. Running it again after a failure continues where it stopped.
func (b *Barrier) RewrapProgress(ctx context.Context, progress func(done, todo int)) (int, error) {
	vk, ok := b.kek.(Versioned)
	if !ok {
		return 0, errors.New("barrier: the KEK has no versions to rotate")
	}
	cur := vk.Current()
	recs, err := b.records(ctx)
	if err != nil {
		return 0, err
	}
	const batch = 256
	type change struct {
		key      string
		old, new []byte
	}
	var pending []change
	done, todo := 0, 0
	for _, r := range recs {
		if r.rec.Wrapped != nil && r.rec.Destroyed.IsZero() && r.rec.Wrapped.KEK != cur {
			todo++
		}
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	progress(0, todo)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		n := 0
		err := b.st.Update(ctx, func(tx store.Writer) error {
			n = 0
			for _, c := range pending {
				v, err := tx.Meta(c.key)
				if err != nil || !bytes.Equal(v, c.old) {
					continue // changed meanwhile (destroyed): leave it
				}
				if err := tx.SetMeta(c.key, c.new); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += n
		pending = pending[:0]
		progress(done, todo)
		return nil
	}
	for _, r := range recs {
		if r.rec.Wrapped == nil || !r.rec.Destroyed.IsZero() || r.rec.Wrapped.KEK == cur {
			continue
		}
		dek, err := b.kek.Unwrap(ctx, *r.rec.Wrapped)
		if err != nil {
			return done, fmt.Errorf("barrier: unwrap data key %s: %w", r.id, err)
		}
		w, err := b.kek.Wrap(ctx, dek)
		clear(dek)
		if err != nil {
			return done, fmt.Errorf("barrier: rewrap data key %s: %w", r.id, err)
		}
		rec := r.rec
		rec.Wrapped = &w
		out, _ := json.Marshal(rec)
		pending = append(pending, change{metaKey + r.id.String(), r.raw, out})
		if len(pending) == batch {
			if err := flush(); err != nil {
				return done, err
			}
		}
	}
	return done, flush()
}
