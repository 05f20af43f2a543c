package keys

import (
	"context"
	"errors"
	"sync"

	"github.com/phivault/phivault/internal/barrier"
)

// ErrSealed: the KEK is sealed; nothing can be wrapped or unwrapped until
// it is unsealed.
var ErrSealed = errors.New("keys: sealed")

// Sealable holds a KEK that can be dropped at once (sealing) and given
// again (unsealing). While sealed, Wrap and Unwrap fail with ErrSealed. It
// is safe for concurrent use.
type Sealable struct {
	mu  sync.RWMutex
	kek barrier.KEK
}

var _ barrier.KEK = (*Sealable)(nil)
var _ barrier.Versioned = (*Sealable)(nil)

// NewSealable returns a Sealable holding kek (nil: sealed).
func NewSealable(kek barrier.KEK) *Sealable { return &Sealable{kek: kek} }

// Seal drops the KEK.
func (s *Sealable) Seal() {
	s.mu.Lock()
	s.kek = nil
	s.mu.Unlock()
}

// Unseal sets the KEK.
func (s *Sealable) Unseal(kek barrier.KEK) {
	s.mu.Lock()
	s.kek = kek
	s.mu.Unlock()
}

// Held returns the KEK held, or nil while sealed.
func (s *Sealable) Held() barrier.KEK {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.kek
}

// Sealed reports whether the KEK is sealed.
func (s *Sealable) Sealed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.kek == nil
}

func (s *Sealable) get() (barrier.KEK, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return nil, ErrSealed
	}
	return s.kek, nil
}

// Wrap wraps with the held KEK.
func (s *Sealable) Wrap(ctx context.Context, dek []byte) (barrier.Wrapped, error) {
	k, err := s.get()
	if err != nil {
		return barrier.Wrapped{}, err
	}
	return k.Wrap(ctx, dek)
}

// Unwrap unwraps with the held KEK.
func (s *Sealable) Unwrap(ctx context.Context, w barrier.Wrapped) ([]byte, error) {
	k, err := s.get()
	if err != nil {
		return nil, err
	}
	return k.Unwrap(ctx, w)
}

// Current names the held KEK's current version ("" while sealed or when
// the KEK has no versions).
func (s *Sealable) Current() string {
	k, err := s.get()
	if err != nil {
		return ""
	}
	if v, ok := k.(barrier.Versioned); ok {
		return v.Current()
	}
	return ""
}
