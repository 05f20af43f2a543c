// Package barrier is phivault's encryption boundary: everything that goes to
// storage passes through it. It owns envelope encryption (AES-256-GCM data
// keys wrapped by a key-encryption key), the data-key cache, compression
// before sealing, and blind index tokens (keyed HMAC). It is the only user
// of crypto/cipher in phivault and knows nothing of FHIR.
//
// Key hierarchy: a KEK (held by a provider in internal/keys) wraps data keys.
// Data keys are named by their users ("patient/123", "tenant/default",
// "index"); the name-to-key mapping is stored under a blind token, so the
// store sees only random key ids and wrapped keys.
package barrier

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// KEK wraps and unwraps data keys. Implementations (internal/keys) must be
// safe for concurrent use. Wrap's result names the KEK and version that
// made it, so that Unwrap, rotation and new providers can be told apart
// without touching stored data.
type KEK interface {
	Wrap(ctx context.Context, dek []byte) (Wrapped, error)
	Unwrap(ctx context.Context, w Wrapped) ([]byte, error)
}

// Wrapped is a data key encrypted by a KEK.
type Wrapped struct {
	KEK  string `json:"kek"`  // provider and version, e.g. "file:3f2a…:1"
	Blob []byte `json:"blob"` // provider-specific ciphertext
}

// ErrKeyDestroyed is returned for data sealed under a destroyed
// (crypto-shredded) key.
var ErrKeyDestroyed = errors.New("barrier: data key destroyed")

// keyRecord is what the store holds for one data key.
type keyRecord struct {
	Wrapped   *Wrapped  `json:"wrapped,omitempty"`
	Created   time.Time `json:"created"`
	Destroyed time.Time `json:"destroyed,omitzero"`
}

const (
	metaKey     = "key/"     // + hex key id -> keyRecord
	metaKeyName = "keyname/" // + hex blind name -> key id
	indexName   = "index"
)

// Barrier seals and opens values and computes blind tokens. It is safe for
// concurrent use.
type Barrier struct {
	kek   KEK
	st    store.Backend
	cache *cache
	index []byte                    // HMAC key for blind tokens (itself a stored data key)
	hmacs atomic.Pointer[sync.Pool] // HMACs keyed by index; replaced on Close

	mu    sync.Mutex
	names map[string]KeyID // key name -> id, bounded

	closed atomic.Bool // Close wiped the keys

	wake chan struct{} // NoteDestroyed -> WatchDestroyed
}

// Open returns a barrier over st using kek, creating the index key on first
// use. cacheSize bounds the number of data keys held in memory.
func Open(ctx context.Context, kek KEK, st store.Backend, cacheSize int) (*Barrier, error) {
	b := &Barrier{kek: kek, st: st, cache: newCache(cacheSize), names: map[string]KeyID{}, wake: make(chan struct{}, 1)}
	id, err := b.resolve(ctx, indexName, []byte(metaKeyName+indexName))
	if err != nil {
		return nil, fmt.Errorf("barrier: index key: %w", err)
	}
	k, err := b.key(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("barrier: index key: %w", err)
	}
	// A copy: the cache zeroes k.raw when it evicts the key, and tokens
	// must not change (or every index lookup and key name would miss).
	b.index = bytes.Clone(k.raw)
	b.hmacs.Store(hmacPool(b.index))
	return b, nil
}

// Seal compresses and encrypts plaintext under the data key called keyName
// (created on first use), binding it to context (see Context).
func (b *Barrier) Seal(ctx context.Context, keyName string, context, plaintext []byte) ([]byte, error) {
	id, err := b.KeyFor(ctx, keyName)
	if err != nil {
		return nil, err
	}
	k, err := b.key(ctx, id)
	if err != nil {
		return nil, err
	}
	body, flags := compress(plaintext)
	return seal(k.aead, id, flags, context, body), nil
}

// Open authenticates and decrypts a value made by Seal with the same context.
func (b *Barrier) Open(ctx context.Context, context, sealed []byte) ([]byte, error) {
	flags, id, err := header(sealed)
	if err != nil {
		return nil, err
	}
	k, err := b.key(ctx, id)
	if err != nil {
		return nil, err
	}
	if flags == 0 {
		out, n, err := open(k.aead, nil, sealed, context)
		if err != nil {
			return nil, err
		}
		return out[n:], nil
	}
	// A compressed value is decrypted into a scratch buffer, cleared and
	// kept for the next once it is decompressed.
	p, _ := scratch.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	z, n, err := open(k.aead, (*p)[:0], sealed, context)
	var pt []byte
	if err == nil {
		pt, err = decompress(flags, z[n:])
		clear(z)
		if cap(z) <= maxScratch {
			*p = z[:0]
		}
	}
	scratch.Put(p)
	return pt, err
}

// scratch holds buffers that compressed values are decrypted into.
var scratch sync.Pool // of *[]byte

// maxScratch bounds the buffers kept in scratch.
const maxScratch = 64 << 10

// KeyFor returns the id of the data key called name, creating it if needed.
// Names are never stored: the store sees a blind token of the name.
func (b *Barrier) KeyFor(ctx context.Context, name string) (KeyID, error) {
	if b.closed.Load() {
		return KeyID{}, ErrClosed
	}
	b.mu.Lock()
	id, ok := b.names[name]
	b.mu.Unlock()
	if ok {
		return id, nil
	}
	tok := b.Token("keyname", name)
	id, err := b.resolve(ctx, name, []byte(metaKeyName+hex.EncodeToString(tok)))
	if err != nil {
		return id, err
	}
	b.mu.Lock()
	if len(b.names) >= 100_000 {
		clear(b.names)
	}
	b.names[name] = id
	b.mu.Unlock()
	return id, nil
}

// resolve finds the key id stored under metaName, creating a new wrapped
// data key if there is none. Concurrent callers agree on one key.
func (b *Barrier) resolve(ctx context.Context, name string, metaName []byte) (KeyID, error) {
	var id KeyID
	err := b.st.View(ctx, func(r store.Reader) error {
		v, err := r.Meta(string(metaName))
		if err == nil {
			copy(id[:], v)
		}
		return err
	})
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return id, err
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	rand.Read(id[:])
	w, err := b.kek.Wrap(ctx, dek)
	if err != nil {
		return id, fmt.Errorf("wrap data key: %w", err)
	}
	rec, _ := json.Marshal(keyRecord{Wrapped: &w, Created: time.Now().UTC()})
	err = b.st.Update(ctx, func(tx store.Writer) error {
		if v, err := tx.Meta(string(metaName)); err == nil {
			copy(id[:], v) // lost a race: use the winner's key
			return nil
		}
		if err := tx.CreateMeta(metaKey+id.String(), rec); err != nil {
			return err
		}
		return tx.CreateMeta(string(metaName), id[:])
	})
	clear(dek)
	return id, err
}

// key returns the unwrapped data key id, from the cache or the store.
func (b *Barrier) key(ctx context.Context, id KeyID) (*dataKey, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if k := b.cache.get(id); k != nil {
		return k, nil
	}
	var raw []byte
	err := b.st.View(ctx, func(r store.Reader) error {
		var err error
		raw, err = r.Meta(metaKey + id.String())
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("barrier: unknown data key %s: %w", id, ErrAuthentication)
	}
	if err != nil {
		return nil, err
	}
	var rec keyRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("barrier: data key %s record: %w", id, ErrMalformed)
	}
	if rec.Wrapped == nil || !rec.Destroyed.IsZero() {
		return nil, ErrKeyDestroyed
	}
	dek, err := b.kek.Unwrap(ctx, *rec.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("barrier: unwrap data key %s: %w", id, err)
	}
	if len(dek) != 32 {
		clear(dek)
		return nil, fmt.Errorf("barrier: data key %s: %w", id, ErrMalformed)
	}
	blk, _ := aes.NewCipher(dek)
	aead, _ := cipher.NewGCM(blk)
	k := &dataKey{raw: dek, aead: aead}
	if k = b.cache.put(id, k); k == nil { // destroyed while unwrapping (see forget)
		return nil, ErrKeyDestroyed
	}
	if b.closed.Load() { // closed while unwrapping: wipe what was just cached
		b.cache.purge()
		return nil, ErrClosed
	}
	return k, nil
}
