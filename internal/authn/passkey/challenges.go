package passkey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// kind is the ceremony a challenge was issued for; a challenge is only
// accepted by the finish step of its own ceremony.
type kind int

const (
	kindRegister     kind = iota + 1 // a signed-in user adds a passkey
	kindSecondFactor                 // a pending login proves its second factor
	kindPasswordless                 // anyone proves a discoverable passkey
	kindStepUp                       // a signed-in user proves a passkey again
)

// maxChallenges bounds the memory unfinished ceremonies may take.
const maxChallenges = 10000

var (
	errNoChallenge    = errors.New("passkey: unknown, used or expired challenge")
	errTooManyPending = errors.New("passkey: too many ceremonies in progress")
)

// pending is one begun ceremony.
type pending struct {
	kind    kind
	user    string // the account it was issued to; "" for passwordless
	session webauthn.SessionData
	expires time.Time
}

// challenges holds begun ceremonies in memory, each for ttl and for one
// use. Entries are keyed by the SHA-256 of their id, so a lookup's timing
// says nothing about the id. It is safe for concurrent use.
type challenges struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[[32]byte]pending
}

func newChallenges(ttl time.Duration, now func() time.Time) *challenges {
	return &challenges{ttl: ttl, now: now, m: make(map[[32]byte]pending)}
}

// put stores p and returns the random id that finds it.
func (c *challenges) put(p pending) (string, error) {
	var raw [32]byte
	rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	now := c.now()
	p.expires = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxChallenges {
		for k, v := range c.m {
			if !now.Before(v.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxChallenges {
			return "", errTooManyPending
		}
	}
	c.m[sha256.Sum256([]byte(id))] = p
	return id, nil
}

// take removes and returns the ceremony id names. An expired or unknown
// id, or one already taken, gives errNoChallenge.
func (c *challenges) take(id string) (pending, error) {
	key := sha256.Sum256([]byte(id))
	c.mu.Lock()
	p, ok := c.m[key]
	delete(c.m, key)
	c.mu.Unlock()
	if !ok || !c.now().Before(p.expires) {
		return pending{}, errNoChallenge
	}
	return p, nil
}
