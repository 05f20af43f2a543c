package authn

import "sync"

// Verified remembers what was decoded from credentials that were already
// verified (a signature, a MAC), keyed by 32 bytes that stand for the
// credential (its SHA-256, or its verified MAC), so that a client's
// repeated requests decode it once. Callers still check lifetime and
// revocation at every use. It holds at most VerifiedMax entries: full, it
// starts over. The zero value is ready; it is safe for concurrent use.
type Verified[V any] struct {
	mu sync.Mutex
	m  map[[32]byte]V
}

// VerifiedMax bounds a Verified.
const VerifiedMax = 10_000

// Get returns the value remembered for k.
func (v *Verified[V]) Get(k [32]byte) (V, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[k]
	return c, ok
}

// Put remembers c for k.
func (v *Verified[V]) Put(k [32]byte, c V) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= VerifiedMax {
		v.m = make(map[[32]byte]V)
	}
	v.m[k] = c
}

// Clear forgets everything remembered.
func (v *Verified[V]) Clear() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m = nil
}
