package session

import (
	"context"
	"time"
)

// Reasons recorded in the OutcomeDesc of automatic logoff events.
const (
	LogoffIdle     = "automatic logoff: idle"
	LogoffLifetime = "automatic logoff: absolute lifetime"
)

// expiry says why rec is over at now ("" while it lives). Pending logins
// expire after Options.Pending.
func (m *Manager) expiry(rec *record, now time.Time) string {
	switch {
	case rec.pending && now.Sub(rec.created) >= m.o.Pending:
		return "pending"
	case rec.pending:
		return ""
	case now.Sub(rec.created) >= m.o.Lifetime:
		return LogoffLifetime
	case now.Sub(rec.seen) >= m.o.Idle:
		return LogoffIdle
	}
	return ""
}

// logoff records the end of a full session. The session is gone whether
// or not the event could be recorded; a failure is logged.
func (m *Manager) logoff(ctx context.Context, rec *record, why string) {
	if err := m.o.Audit.Record(ctx, m.event(rec, "logout", why)); err != nil {
		m.o.Log.Error("session: audit of sign-out failed", "user", rec.user, "why", why, "err", err)
	}
}

// Sweep ends every expired session and pending login, auditing each
// automatic logoff, and returns how many sessions it ended.
func (m *Manager) Sweep(ctx context.Context) int {
	m.mu.Lock()
	gone := m.sweepLocked(m.o.Now())
	m.mu.Unlock()
	for _, g := range gone {
		m.logoff(ctx, g.rec, g.why)
	}
	return len(gone)
}

type ended struct {
	rec *record
	why string
}

// sweepLocked removes expired records and returns the full sessions among
// them, to be audited once m.mu is released.
func (m *Manager) sweepLocked(now time.Time) []ended {
	var gone []ended
	for k, rec := range m.recs {
		why := m.expiry(rec, now)
		if why == "" {
			continue
		}
		delete(m.recs, k)
		if !rec.pending {
			gone = append(gone, ended{rec, why})
		}
	}
	return gone
}

// Run sweeps every interval (default one minute) until ctx ends, so that an
// abandoned session's logoff is audited within a minute of its expiry even
// if the browser never comes back.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sweep(ctx)
		}
	}
}
