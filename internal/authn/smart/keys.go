package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/phivault/phivault/internal/store"
)

// accessType is the JWT typ of access tokens (RFC 9068); Check refuses
// any other, so an id_token can never pass as an access token.
const accessType = "at+jwt"

// storedKey is one ES256 signing key as kept (sealed) in store meta.
type storedKey struct {
	Kid     string    `json:"kid"`
	Created time.Time `json:"created"`
	PKCS8   []byte    `json:"pkcs8"`
}

type liveKey struct {
	kid     string
	created time.Time
	priv    *ecdsa.PrivateKey
	signer  jose.Signer // access tokens: typ at+jwt (RFC 9068)
	idSign  jose.Signer // id_tokens: typ JWT
}

// keyring holds the signing keys: the newest signs, older ones stay
// published (and accepted) until every token they signed has expired.
type keyring struct {
	v        vault
	every    time.Duration // rotation period
	lifetime time.Duration // longest lifetime of anything signed, plus leeway
	now      func() time.Time

	mu     sync.RWMutex
	keys   []*liveKey // oldest first
	loaded time.Time
}

// current returns the signing key, rotating first when it is due.
func (k *keyring) current(ctx context.Context) (*liveKey, error) {
	k.mu.RLock()
	n := len(k.keys)
	var cur *liveKey
	if n > 0 {
		cur = k.keys[n-1]
	}
	k.mu.RUnlock()
	if cur != nil && k.now().Sub(cur.created) < k.every {
		return cur, nil
	}
	if err := k.rotate(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[len(k.keys)-1], nil
}

// rotate adds a key when the newest is older than the period and drops
// keys whose tokens can no longer be valid. It is safe against another
// node rotating at the same moment: the store decides who wins and the
// loser adopts the winner's keys.
func (k *keyring) rotate(ctx context.Context) error {
	for range 3 {
		var sealed []byte
		err := k.v.st.View(ctx, func(r store.Reader) error {
			var err error
			sealed, err = r.Meta(metaKeys)
			return err
		})
		var rec struct{ Keys []storedKey }
		switch {
		case notFound(err):
		case err != nil:
			return err
		default:
			if err := k.v.open(ctx, metaKeys, sealed, &rec); err != nil {
				return err
			}
		}
		now := k.now().UTC()
		next := rec.Keys
		if len(next) == 0 || now.Sub(next[len(next)-1].Created) >= k.every {
			priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return err
			}
			next = append(next, storedKey{Kid: randomID(9), Created: now, PKCS8: der})
		}
		// A key retired when its successor was created stops mattering
		// once the longest-lived token it signed has expired.
		for len(next) > 1 && now.Sub(next[1].Created) > k.lifetime {
			next = next[1:]
		}
		resealed, err := k.v.seal(ctx, metaKeys, struct{ Keys []storedKey }{next})
		if err != nil {
			return err
		}
		var lost bool
		err = k.v.st.Update(ctx, func(tx store.Writer) error {
			cur, err := tx.Meta(metaKeys)
			lost = false
			switch {
			case notFound(err) && sealed == nil:
			case err != nil:
				return err
			case string(cur) != string(sealed):
				lost = true
				return nil
			}
			return tx.SetMeta(metaKeys, resealed)
		})
		if err != nil {
			return err
		}
		if !lost {
			return k.adopt(next)
		}
	}
	return errors.New("smart: signing keys keep changing under us")
}

// reload reads the keys another node may have rotated, at most once a
// second.
func (k *keyring) reload(ctx context.Context) error {
	k.mu.RLock()
	recent := k.now().Sub(k.loaded) < time.Second
	k.mu.RUnlock()
	if recent {
		return nil
	}
	var rec struct{ Keys []storedKey }
	if err := k.v.get(ctx, metaKeys, &rec); err != nil {
		return err
	}
	return k.adopt(rec.Keys)
}

func (k *keyring) adopt(stored []storedKey) error {
	live := make([]*liveKey, 0, len(stored))
	for _, s := range stored {
		p, err := x509.ParsePKCS8PrivateKey(s.PKCS8)
		priv, ok := p.(*ecdsa.PrivateKey)
		if err != nil || !ok {
			return errors.New("smart: a stored signing key is unreadable")
		}
		key := jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: s.Kid}}
		sg, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType(accessType))
		if err != nil {
			return err
		}
		idSign, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			return err
		}
		live = append(live, &liveKey{kid: s.Kid, created: s.Created, priv: priv, signer: sg, idSign: idSign})
	}
	k.mu.Lock()
	k.keys, k.loaded = live, k.now()
	k.mu.Unlock()
	return nil
}

// public returns the key with kid, reloading once if it is unknown.
func (k *keyring) public(ctx context.Context, kid string) (*ecdsa.PublicKey, bool) {
	for i := range 2 {
		k.mu.RLock()
		for _, lk := range k.keys {
			if lk.kid == kid {
				k.mu.RUnlock()
				return &lk.priv.PublicKey, true
			}
		}
		k.mu.RUnlock()
		if i == 0 && k.reload(ctx) != nil {
			break
		}
	}
	return nil, false
}

// jwks is the published key set.
func (k *keyring) jwks() jose.JSONWebKeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var set jose.JSONWebKeySet
	for _, lk := range k.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &lk.priv.PublicKey, KeyID: lk.kid, Algorithm: string(jose.ES256), Use: "sig"})
	}
	return set
}
