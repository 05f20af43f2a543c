package session

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// StoreKeeper keeps sessions in the store's metadata, sealed by the
// barrier under the "system" data key. The store sees only a blind name
// per session (a keyed token of the cookie's hash) and ciphertext: no user
// id, role, address or cookie. Records are bound to their name, so one
// cannot be moved to another.
type StoreKeeper struct {
	st store.Backend
	b  *barrier.Barrier
}

var _ Keeper = (*StoreKeeper)(nil)

const (
	keepPrefix  = "session/"
	keepKeyName = "system"
)

// NewStoreKeeper returns a Keeper over st sealed by b.
func NewStoreKeeper(ctx context.Context, st store.Backend, b *barrier.Barrier) (*StoreKeeper, error) {
	// Create the data key now, so that no seal ever needs a write of its own.
	if _, err := b.KeyFor(ctx, keepKeyName); err != nil {
		return nil, err
	}
	return &StoreKeeper{st: st, b: b}, nil
}

// kept is the sealed plaintext: the id (so List can name it) and the record.
type kept struct {
	ID  string          `json:"id"`
	Rec json.RawMessage `json:"rec"`
}

func (k *StoreKeeper) name(id string) string {
	return keepPrefix + hex.EncodeToString(k.b.Token("session", id))
}

func (k *StoreKeeper) open(ctx context.Context, name string, sealed []byte) (kept, error) {
	var v kept
	pt, err := k.b.Open(ctx, barrier.Context("session", name), sealed)
	if err != nil {
		return v, fmt.Errorf("session: opening a kept session: %w", err)
	}
	err = json.Unmarshal(pt, &v)
	return v, err
}

func (k *StoreKeeper) read(ctx context.Context, name string) ([]byte, error) {
	var sealed []byte
	err := k.st.View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(name)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return sealed, err
}

// Load implements Keeper.
func (k *StoreKeeper) Load(ctx context.Context, id string) ([]byte, error) {
	name := k.name(id)
	sealed, err := k.read(ctx, name)
	if err != nil {
		return nil, err
	}
	if sealed == nil {
		return nil, ErrNoSession
	}
	v, err := k.open(ctx, name, sealed)
	if err != nil || v.ID != id {
		return nil, errors.Join(err, errors.New("session: a kept session does not match its name"))
	}
	return v.Rec, nil
}

// Update implements Keeper with optimistic concurrency: the record is
// read, changed and written back only if nobody wrote it meanwhile
// (otherwise it starts again, up to 10 times).
func (k *StoreKeeper) Update(ctx context.Context, id string, fn func(old []byte) ([]byte, error)) error {
	name := k.name(id)
	aad := barrier.Context("session", name)
	for range 10 {
		sealed, err := k.read(ctx, name)
		if err != nil {
			return err
		}
		var old []byte
		if sealed != nil {
			v, err := k.open(ctx, name, sealed)
			if err != nil {
				return err
			}
			old = v.Rec
		}
		rec, err := fn(old)
		if err != nil {
			return err
		}
		var next []byte
		if rec != nil {
			pt, _ := json.Marshal(kept{ID: id, Rec: rec})
			if next, err = k.b.Seal(ctx, keepKeyName, aad, pt); err != nil {
				return err
			}
		}
		raced := false
		err = k.st.Update(ctx, func(tx store.Writer) error {
			cur, err := tx.Meta(name)
			if errors.Is(err, store.ErrNotFound) {
				cur, err = nil, nil
			}
			if err != nil {
				return err
			}
			if raced = !bytes.Equal(cur, sealed); raced {
				return nil
			}
			if next == nil {
				return tx.DeleteMeta(name)
			}
			return tx.SetMeta(name, next)
		})
		if err != nil {
			return err
		}
		if !raced {
			return nil
		}
	}
	return errors.New("session: too many concurrent changes to one session")
}

// List implements Keeper.
func (k *StoreKeeper) List(ctx context.Context) (map[string][]byte, error) {
	var kvs []store.KV
	err := k.st.View(ctx, func(r store.Reader) error {
		var err error
		kvs, err = r.MetaPrefix(keepPrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(kvs))
	for _, kv := range kvs {
		v, err := k.open(ctx, kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out[v.ID] = v.Rec
	}
	return out, nil
}
