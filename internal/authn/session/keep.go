package session

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/phivault/phivault/internal/policy"
)

// Keeper keeps a copy of every session and pending login outside the
// process (StoreKeeper: sealed in the store), so that sessions outlive a
// restart and every node sharing the store knows them. Records are opaque
// bytes to it. Implementations must be safe for concurrent use.
type Keeper interface {
	// Load returns the record stored under id, or ErrNoSession.
	Load(ctx context.Context, id string) ([]byte, error)
	// Update atomically replaces the record under id by fn(old), where
	// old is nil when there is none and a nil result deletes. fn may run
	// more than once (on conflicts) and must have no other effects.
	Update(ctx context.Context, id string, fn func(old []byte) ([]byte, error)) error
	// List returns every stored record by id.
	List(ctx context.Context) (map[string][]byte, error)
}

// wire is a record as a Keeper holds it.
type wire struct {
	Pending  bool               `json:"pending,omitempty"`
	Fails    int                `json:"fails,omitempty"`
	User     string             `json:"user"`
	Roles    []string           `json:"roles,omitempty"`
	Epoch    int                `json:"epoch"`
	Method   string             `json:"method,omitempty"`
	MFA      bool               `json:"mfa,omitempty"`
	ID       string             `json:"id,omitempty"`
	CSRF     string             `json:"csrf"`
	Source   string             `json:"source,omitempty"`
	Created  time.Time          `json:"created"`
	Seen     time.Time          `json:"seen"`
	AuthTime time.Time          `json:"authTime,omitzero"`
	StepBy   string             `json:"stepBy,omitempty"`
	BG       *policy.BreakGlass `json:"breakGlass,omitempty"`
}

func encode(r *record) []byte {
	b, _ := json.Marshal(wire{r.pending, r.fails, r.user, r.roles, r.epoch, r.method, r.mfa, r.id, r.csrf, r.source,
		r.created, r.seen, r.authTime, r.stepBy, r.bg})
	return b
}

func decode(b []byte) (*record, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &record{pending: w.Pending, fails: w.Fails, user: w.User, roles: w.Roles, epoch: w.Epoch, method: w.Method,
		mfa: w.MFA, id: w.ID, csrf: w.CSRF, source: w.Source, created: w.Created, seen: w.Seen, authTime: w.AuthTime,
		stepBy: w.StepBy, bg: w.BG}, nil
}

// merge folds into r what another node may have recorded in o: the later
// activity, the more failures, the later proof of identity and the later
// break-the-glass window. Everything else is fixed at sign-in.
func merge(r, o *record) {
	if o.seen.After(r.seen) {
		r.seen = o.seen
	}
	r.fails = max(r.fails, o.fails)
	if o.authTime.After(r.authTime) {
		r.authTime, r.stepBy = o.authTime, o.stepBy
	}
	if o.bg != nil && (r.bg == nil || o.bg.Until.After(r.bg.Until)) {
		r.bg = o.bg
	}
}

func idOf(k [32]byte) string { return hex.EncodeToString(k[:]) }

// refresh brings the browser's record in memory up to date with the
// Keeper when it is older than Options.Refresh (or missing), and drops it
// when the Keeper no longer has it (ended on another node).
func (m *Manager) refresh(ctx context.Context, k [32]byte) {
	if m.o.Keep == nil || k == ([32]byte{}) {
		return
	}
	now := m.o.Now()
	m.mu.Lock()
	cur := m.recs[k]
	fresh := cur != nil && now.Sub(cur.loaded) < m.o.Refresh && !now.Before(cur.loaded)
	m.mu.Unlock()
	if fresh {
		return
	}
	b, err := m.o.Keep.Load(ctx, idOf(k))
	if errors.Is(err, ErrNoSession) {
		m.mu.Lock()
		if m.recs[k] == cur {
			delete(m.recs, k)
		}
		m.mu.Unlock()
		return
	}
	var got *record
	if err == nil {
		got, err = decode(b)
	}
	if err != nil {
		m.o.Log.Error("session: reading a kept session failed", "err", err)
		return
	}
	got.loaded, got.saved = now, got.seen
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.recs[k]; c != nil {
		merge(got, c)
		*c = *got
		return
	}
	m.recs[k] = got
}

// save writes rec (a snapshot) to the Keeper, merged with what is kept.
func (m *Manager) save(ctx context.Context, k [32]byte, rec record) error {
	if m.o.Keep == nil {
		return nil
	}
	return m.o.Keep.Update(ctx, idOf(k), func(old []byte) ([]byte, error) {
		r := rec
		if old != nil {
			if o, err := decode(old); err == nil {
				merge(&r, o)
			}
		}
		return encode(&r), nil
	})
}

// remove ends the record under k on this node and in the Keeper and
// reports whether this call ended it (so that one node, once, audits the
// end). With onlyExpired the kept copy is removed only if it too has
// expired (another node may have seen the user since).
func (m *Manager) remove(ctx context.Context, k [32]byte, rec *record, onlyExpired bool) bool {
	m.mu.Lock()
	if m.recs[k] == rec {
		delete(m.recs, k)
	}
	m.mu.Unlock()
	if m.o.Keep == nil {
		return true
	}
	now := m.o.Now()
	var ended bool
	err := m.o.Keep.Update(ctx, idOf(k), func(old []byte) ([]byte, error) {
		ended = false
		if old == nil {
			return nil, nil
		}
		if onlyExpired {
			if o, err := decode(old); err == nil && m.expiry(o, now) == "" {
				return old, nil
			}
		}
		ended = true
		return nil, nil
	})
	if err != nil {
		m.o.Log.Error("session: removing a kept session failed", "err", err)
	}
	return ended
}
