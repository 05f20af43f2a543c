package session

import (
	"context"
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/policy"
)

// StepUp reports whether the user of r's session proved who they are
// (signing in or Reauthenticated) within Options.StepUp (5 min by
// default). Exports, key operations and break-the-glass ask it.
func (m *Manager) StepUp(r *http.Request) bool {
	return m.SteppedUpWith(r, "")
}

// SteppedUpWith is StepUp limited to re-authentications by method (e.g.
// "passkey"); method "" accepts any.
func (m *Manager) SteppedUpWith(r *http.Request, method string) bool {
	m.sync(r)
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	_, rec := m.lookup(r)
	if rec == nil || rec.pending || m.expiry(rec, now) != "" {
		return false
	}
	if method != "" && rec.stepBy != method {
		return false
	}
	return now.Sub(rec.authTime) < m.o.StepUp
}

// Reauthenticated records that the signed-in user of r just proved who they
// are again, by method (e.g. "password+totp", "passkey"); the caller has
// checked the credentials. It fails with ErrNoSession without a session.
func (m *Manager) Reauthenticated(r *http.Request, method string) error {
	m.sync(r)
	now := m.o.Now()
	m.mu.Lock()
	k, rec := m.lookup(r)
	if rec == nil || rec.pending || m.expiry(rec, now) != "" {
		m.mu.Unlock()
		return ErrNoSession
	}
	rec.authTime, rec.stepBy, rec.seen = now, method, now
	snap := *rec
	m.mu.Unlock()
	return m.save(r.Context(), k, snap)
}

// OpenBreakGlass opens a break-the-glass window of Options.BreakGlass on
// r's session, which must have stepped up (ErrStepUp otherwise). category
// is a short code safe to record ("emergency-treatment"); reason is the
// user's free text, recorded only as a keyed hash. The "break-glass" audit
// event is recorded first: if it cannot be, nothing opens (ErrAudit).
func (m *Manager) OpenBreakGlass(r *http.Request, category, reason string) (policy.BreakGlass, error) {
	if !m.StepUp(r) {
		return policy.BreakGlass{}, ErrStepUp
	}
	now := m.o.Now()
	m.mu.Lock()
	k, rec := m.lookup(r)
	if rec == nil || rec.pending {
		m.mu.Unlock()
		return policy.BreakGlass{}, ErrNoSession
	}
	s := *rec
	m.mu.Unlock()
	bg := policy.BreakGlass{Reason: category, Until: now.Add(m.o.BreakGlass)}
	ev := m.event(&s, "break-glass", "break-the-glass opened: "+category+" until "+bg.Until.UTC().Format(time.RFC3339))
	ev.BreakGlass = true
	ev.Query = "break-glass-reason:" + m.o.ReasonHash(reason)
	ev.UserAgent = r.UserAgent()
	if err := m.o.Audit.Record(context.WithoutCancel(r.Context()), ev); err != nil {
		m.o.Log.Error("session: audit of break-the-glass failed", "err", err)
		return policy.BreakGlass{}, ErrAudit
	}
	m.mu.Lock()
	if _, cur := m.lookup(r); cur != rec {
		m.mu.Unlock()
		return policy.BreakGlass{}, ErrNoSession
	}
	rec.bg = &bg
	snap := *rec
	m.mu.Unlock()
	if err := m.save(r.Context(), k, snap); err != nil {
		// Open on this node; other nodes do not see the window.
		m.o.Log.Error("session: keeping a break-the-glass window failed", "err", err)
	}
	return bg, nil
}

// FailStepUp counts a failed re-authentication (wrong password or code on
// a step-up form) against r's session and reports how many tries are
// left. At zero the session is ended and the sign-out audited, so that a
// stolen session cannot be used to guess a second factor.
func (m *Manager) FailStepUp(r *http.Request) (left int) {
	m.sync(r)
	m.mu.Lock()
	k, rec := m.lookup(r)
	if rec == nil || rec.pending {
		m.mu.Unlock()
		return 0
	}
	rec.fails++
	snap := *rec
	m.mu.Unlock()
	if snap.fails < m.o.MaxFailures {
		if err := m.save(r.Context(), k, snap); err != nil {
			m.o.Log.Error("session: keeping a failure count failed", "err", err)
		}
		return m.o.MaxFailures - snap.fails
	}
	if m.remove(r.Context(), k, rec, false) {
		m.logoff(r.Context(), rec, "session ended: too many failed re-authentications")
	}
	return 0
}
