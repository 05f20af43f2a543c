package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault/internal/policy"
)

// ErrRevoked means a session or token was issued under an epoch the
// account has since moved past (Disable, Revoke, Recertify).
var ErrRevoked = errors.New("account: the session or token has been revoked")

// cached is an account as last read from the store.
type cached struct {
	a    Account
	err  error // ErrNotFound: cached absence
	read time.Time
	key  string // the record's metadata key (for Changed)
}

// Valid is what an authenticator calls on every request carrying a
// session or token of id issued under epoch. It returns the principal's
// account fields (UserID, Roles, Practitioner, Patient, Department and
// Trained, per the training gate at now), or ErrNotFound, ErrDisabled or
// ErrRevoked. It is served from memory: every change made through this
// Directory reaches it at once, and a change made by another node within
// Options.Refresh (at most 2s).
func (d *Directory) Valid(ctx context.Context, id string, epoch int) (policy.Principal, error) {
	now := d.now()
	d.cmu.RLock()
	c, ok := d.cache[id]
	d.cmu.RUnlock()
	if !ok || now.Sub(c.read) >= d.opts.Refresh || now.Before(c.read) {
		var err error
		if c, err = d.fill(ctx, id, now); err != nil {
			return policy.Principal{}, err
		}
	}
	switch {
	case c.err != nil:
		return policy.Principal{}, c.err
	case c.a.Disabled:
		return policy.Principal{}, ErrDisabled
	case c.a.Epoch != epoch:
		return policy.Principal{}, ErrRevoked
	}
	return policy.Principal{
		UserID: c.a.ID, Roles: slices.Clone(c.a.Roles), Practitioner: c.a.Practitioner, Patient: c.a.Patient,
		Department: c.a.Department, Trained: d.trained(c.a, now),
	}, nil
}

// fill reads id from the store into the cache. A store failure is not
// cached (and fails the request).
func (d *Directory) fill(ctx context.Context, id string, now time.Time) (cached, error) {
	d.cmu.RLock()
	gen := d.gen
	d.cmu.RUnlock()
	var rec record
	key := d.accountKey(id)
	_, err := d.load(ctx, key, &rec)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return cached{}, fmt.Errorf("account: %w", err)
	}
	c := cached{a: rec.Account, err: err, read: now, key: key}
	d.cmu.Lock()
	if len(d.cache) >= d.opts.MaxTracked {
		clear(d.cache) // cheap and rare: the next requests refill it
	}
	if gen == d.gen { // else a change landed meanwhile: what we read may be older
		d.cache[id] = c
	}
	d.cmu.Unlock()
	return c, nil
}

// ChangePrefix is the metadata key prefix of account records. A store
// that tells the other nodes of a cluster about changed keys (PostgreSQL's
// NOTIFY) watches it, and each node passes the keys it hears to Changed.
const ChangePrefix = accountMeta

// Changed drops the cached account stored under key, after another node
// changed it, so that the next request of that user reads it again; key ""
// (changes may have been missed) drops every cached account. Without it a
// change made elsewhere takes effect within Options.Refresh.
func (d *Directory) Changed(key string) {
	d.cmu.Lock()
	defer d.cmu.Unlock()
	d.gen++ // a fill in flight may have read the old record
	if key == "" {
		clear(d.cache)
		return
	}
	for id, c := range d.cache {
		if c.key == key {
			delete(d.cache, id)
		}
	}
}

// invalidate drops id from the cache after a change.
func (d *Directory) invalidate(id string) {
	d.cmu.Lock()
	delete(d.cache, id)
	d.gen++
	d.cmu.Unlock()
}

// trained applies the training gate to a at now.
func (d *Directory) trained(a Account, now time.Time) bool {
	if !d.opts.TrainingRequired {
		return true
	}
	status, _ := trainingStatus(a, d.opts.TrainingCourse, now)
	return status == TrainingCurrent
}

// Training statuses in the access review.
const (
	TrainingCurrent = "current"
	TrainingExpired = "expired"
	TrainingMissing = "missing"
)

// trainingStatus returns whether a holds an unexpired record of course at
// now, and the latest expiry among its records of that course.
func trainingStatus(a Account, course string, now time.Time) (string, time.Time) {
	var exp time.Time
	for _, t := range a.Training {
		if t.Course == course && t.Expires.After(exp) {
			exp = t.Expires
		}
	}
	switch {
	case exp.IsZero():
		return TrainingMissing, exp
	case now.Before(exp):
		return TrainingCurrent, exp
	}
	return TrainingExpired, exp
}
