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

// maxChallenges bounds the memory unfinished ceremonies may take, and
// maxPerSource what one client address may hold of it, so that one
// client cannot crowd out everyone's sign-in (it is generous because a
// hospital's workstations may share one address behind NAT).
const (
	maxChallenges = 10000
	maxPerSource  = 200
)

var (
	errNoChallenge    = errors.New("passkey: unknown, used or expired challenge")
	errTooManyPending = errors.New("passkey: too many ceremonies in progress")
)

// pending is one begun ceremony.
type pending struct {
	kind    kind
	user    string // the account it was issued to; "" for passwordless
	source  string // client address
	session webauthn.SessionData
	expires time.Time
}

// challenges holds begun ceremonies in memory, each for ttl and for one
// use. Entries are keyed by the SHA-256 of their id, so a lookup's timing
// says nothing about the id. It is safe for concurrent use.
type challenges struct {
	ttl      time.Duration
	now      func() time.Time
	mu       sync.Mutex
	m        map[[32]byte]pending
	bySource map[string]int // entries held per source, expired ones included
}

func newChallenges(ttl time.Duration, now func() time.Time) *challenges {
	return &challenges{ttl: ttl, now: now, m: make(map[[32]byte]pending), bySource: make(map[string]int)}
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
	if len(c.m) >= maxChallenges || c.bySource[p.source] >= maxPerSource {
		c.purge(now)
		if len(c.m) >= maxChallenges || c.bySource[p.source] >= maxPerSource {
			return "", errTooManyPending
		}
	}
	c.m[sha256.Sum256([]byte(id))] = p
	c.bySource[p.source]++
	return id, nil
}

// purge drops expired entries; c.mu is held.
func (c *challenges) purge(now time.Time) {
	for k, v := range c.m {
		if !now.Before(v.expires) {
			c.drop(k, v)
		}
	}
}

// drop removes entry k; c.mu is held.
func (c *challenges) drop(k [32]byte, p pending) {
	delete(c.m, k)
	if c.bySource[p.source]--; c.bySource[p.source] <= 0 {
		delete(c.bySource, p.source)
	}
}

// take removes and returns the ceremony id names. An expired or unknown
// id, or one already taken, gives errNoChallenge.
func (c *challenges) take(id string) (pending, error) {
	key := sha256.Sum256([]byte(id))
	c.mu.Lock()
	p, ok := c.m[key]
	if ok {
		c.drop(key, p)
	}
	c.mu.Unlock()
	if !ok || !c.now().Before(p.expires) {
		return pending{}, errNoChallenge
	}
	return p, nil
}
