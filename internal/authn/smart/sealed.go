package smart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// Store meta keys. Every value is sealed by the barrier under the
// "system" data key with the key name as associated data, so a record
// cannot be moved to another key. Names carry only random client ids and
// SHA-256 hashes of secrets, never a secret or a user id.
const (
	prefix        = "smart/"
	metaKeys      = prefix + "signing-keys"
	metaCSRF      = prefix + "csrf-key"
	prefixClient  = prefix + "client/"
	prefixCode    = prefix + "code/"
	prefixRefresh = prefix + "refresh/"
	prefixLaunch  = prefix + "launch/"
	prefixRevoked = prefix + "revoked/" // by jti or by family ("sid:" + sid)
	prefixJTI     = prefix + "assertion/"
	sealKeyName   = "system"
)

// vault keeps JSON records sealed in store meta.
type vault struct {
	st store.Backend
	b  *barrier.Barrier
}

func aad(key string) []byte { return barrier.Context("smart", key) }

// hashName turns a secret (code, refresh token, launch id) into the meta
// key that names it.
func hashName(p, secret string) string {
	h := sha256.Sum256([]byte(secret))
	return p + hex.EncodeToString(h[:])
}

func (v vault) seal(ctx context.Context, key string, rec any) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return v.b.Seal(ctx, sealKeyName, aad(key), plain)
}

func (v vault) open(ctx context.Context, key string, sealed []byte, rec any) error {
	plain, err := v.b.Open(ctx, aad(key), sealed)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, rec)
}

// get reads key into rec; store.ErrNotFound if absent.
func (v vault) get(ctx context.Context, key string, rec any) error {
	var sealed []byte
	err := v.st.View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(key)
		return err
	})
	if err != nil {
		return err
	}
	return v.open(ctx, key, sealed, rec)
}

// put stores rec under key, replacing what was there; create fails with
// store.ErrExists instead.
func (v vault) put(ctx context.Context, key string, rec any, create bool) error {
	sealed, err := v.seal(ctx, key, rec)
	if err != nil {
		return err
	}
	return v.st.Update(ctx, func(tx store.Writer) error {
		if create {
			return tx.CreateMeta(key, sealed)
		}
		return tx.SetMeta(key, sealed)
	})
}

// list returns the keys under p and their opened records.
func list[T any](ctx context.Context, v vault, p string) (map[string]T, error) {
	var kvs []store.KV
	err := v.st.View(ctx, func(r store.Reader) error {
		var err error
		kvs, err = r.MetaPrefix(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]T, len(kvs))
	for _, kv := range kvs {
		var rec T
		if err := v.open(ctx, kv.Key, kv.Value, &rec); err != nil {
			return nil, err
		}
		out[kv.Key] = rec
	}
	return out, nil
}

// consume reads the record under key and, in the same transaction,
// replaces it with what mark returns. It is how single-use codes and
// refresh tokens are spent: two concurrent callers cannot both see an
// unspent record. fresh reports whether the record was unspent.
func consume[T any](ctx context.Context, v vault, key string, spent func(*T) bool, mark func(*T)) (rec T, fresh bool, err error) {
	var sealed []byte
	err = v.st.View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(key)
		return err
	})
	if err != nil {
		return rec, false, err
	}
	if err := v.open(ctx, key, sealed, &rec); err != nil {
		return rec, false, err
	}
	if spent(&rec) {
		return rec, false, nil
	}
	next := rec
	mark(&next)
	resealed, err := v.seal(ctx, key, next)
	if err != nil {
		return rec, false, err
	}
	var lost bool
	err = v.st.Update(ctx, func(tx store.Writer) error {
		lost = false
		cur, err := tx.Meta(key)
		if err != nil {
			return err
		}
		if string(cur) != string(sealed) { // spent by someone else meanwhile
			lost = true
			return nil
		}
		return tx.SetMeta(key, resealed)
	})
	if err != nil {
		return rec, false, err
	}
	return rec, !lost, nil
}

func notFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
