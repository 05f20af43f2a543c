package passkey

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
)

// Accounts is what a HandleIndex reads: every account, and each one's
// second-factor material. account.Directory implements it.
type Accounts interface {
	List(ctx context.Context) ([]account.Account, error)
	MFA(ctx context.Context, id string) (account.MFA, error)
}

// HandleIndex implements Handles over an account directory that has no
// index by user handle: it keeps handle -> user in memory, filled by
// reading the MFA record of every account with a passkey enrolled. An
// unknown handle triggers a fresh read at most once per MinRescan, so
// random handles cannot make every login read the whole directory. A
// stale entry is harmless: the login reloads the account and the
// ceremony compares the handle with the stored one. It is safe for
// concurrent use.
type HandleIndex struct {
	accts     Accounts
	now       func() time.Time
	minRescan time.Duration

	mu       sync.Mutex
	byHandle map[string]string
	scanned  time.Time
}

var _ Handles = (*HandleIndex)(nil)

// NewHandleIndex returns an empty index over accts that reads it again
// at most once per minRescan (0: 10 seconds).
func NewHandleIndex(accts Accounts, minRescan time.Duration) *HandleIndex {
	if minRescan <= 0 {
		minRescan = 10 * time.Second
	}
	return &HandleIndex{accts: accts, now: time.Now, minRescan: minRescan, byHandle: map[string]string{}}
}

// Remember records that user owns handle (called when a handle is made,
// so this node never needs a rescan for its own registrations).
func (x *HandleIndex) Remember(handle []byte, user string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byHandle[string(handle)] = user
}

// UserByHandle returns the account holding handle, or account.ErrNotFound.
func (x *HandleIndex) UserByHandle(ctx context.Context, handle []byte) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if id, ok := x.byHandle[string(handle)]; ok {
		return id, nil
	}
	now := x.now()
	if !x.scanned.IsZero() && now.Sub(x.scanned) < x.minRescan {
		return "", account.ErrNotFound
	}
	x.scanned = now
	all, err := x.accts.List(ctx)
	if err != nil {
		return "", fmt.Errorf("passkey: list accounts: %w", err)
	}
	fresh := make(map[string]string, len(x.byHandle))
	for _, a := range all {
		if a.Disabled || !slices.Contains(a.MFAEnrolled, "passkey") {
			continue
		}
		m, err := x.accts.MFA(ctx, a.ID)
		if err != nil {
			return "", fmt.Errorf("passkey: read second factors: %w", err)
		}
		if len(m.WebAuthnID) > 0 {
			fresh[string(m.WebAuthnID)] = a.ID
		}
	}
	x.byHandle = fresh
	if id, ok := x.byHandle[string(handle)]; ok {
		return id, nil
	}
	return "", account.ErrNotFound
}
