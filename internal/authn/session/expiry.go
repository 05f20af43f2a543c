package session

import (
	"context"
	"encoding/hex"
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

// Sweep ends every expired session and pending login, on this node and
// in the Keeper, auditing each automatic logoff once, and returns how many
// sessions it ended.
func (m *Manager) Sweep(ctx context.Context) int {
	n := m.sweepMemory(ctx)
	if m.o.Keep == nil {
		return n
	}
	kept, err := m.o.Keep.List(ctx)
	if err != nil {
		m.o.Log.Error("session: listing kept sessions failed", "err", err)
		return n
	}
	now := m.o.Now()
	for id, b := range kept {
		rec, err := decode(b)
		raw, herr := hex.DecodeString(id)
		if err != nil || herr != nil || len(raw) != 32 {
			continue
		}
		why := m.expiry(rec, now)
		if why == "" {
			continue
		}
		k := [32]byte(raw)
		m.mu.Lock()
		mine := m.recs[k]
		m.mu.Unlock()
		if m.remove(ctx, k, mine, true) && !rec.pending {
			m.logoff(ctx, rec, why)
			n++
		}
	}
	return n
}

// sweepMemory ends the expired records this node holds.
func (m *Manager) sweepMemory(ctx context.Context) int {
	now := m.o.Now()
	type expired struct {
		k   [32]byte
		rec *record
		why string
	}
	var gone []expired
	m.mu.Lock()
	for k, rec := range m.recs {
		if why := m.expiry(rec, now); why != "" {
			gone = append(gone, expired{k, rec, why})
		}
	}
	m.mu.Unlock()
	n := 0
	for _, g := range gone {
		if m.remove(ctx, g.k, g.rec, true) && !g.rec.pending {
			m.logoff(ctx, g.rec, g.why)
			n++
		}
	}
	return n
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
