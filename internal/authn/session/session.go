// Package session owns console sign-in sessions: the session cookie, the
// server-side session records (only a SHA-256 of each cookie is kept),
// pending first-step logins waiting for a second factor, CSRF tokens, idle
// and absolute timeouts with audited automatic logoff, step-up
// re-authentication and break-the-glass windows.
//
// Sessions live in a bounded in-memory map (Options.MaxSessions). With
// Options.Keep (a StoreKeeper) every session is also kept sealed in the
// store, so sessions survive a restart and every node sharing the store
// knows them; a node's copy is re-read after Options.Refresh (2 s), so a
// sign-out on one node takes effect on the others within that time. Without
// it, sessions are this process's alone.
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
)

// CookieName is the session cookie. The __Host- prefix makes browsers
// insist on Secure, Path=/ and no Domain.
const CookieName = "__Host-phivault_session"

// Errors callers match with errors.Is.
var (
	// ErrNoSession: the request carries no live session (or pending login).
	ErrNoSession = errors.New("session: not signed in")
	// ErrFull: the session table is full; the caller answers 503.
	ErrFull = errors.New("session: too many sessions")
	// ErrMismatch: a second factor was completed for another user than
	// the one whose password this browser gave.
	ErrMismatch = errors.New("session: the second factor belongs to another user")
	// ErrStepUp: the operation needs a recent re-authentication.
	ErrStepUp = errors.New("session: re-authentication required")
	// ErrAudit: the audit log could not record the event; nothing changed.
	ErrAudit = errors.New("session: the audit log is unavailable")
)

// Accounts is what sessions need from the account directory.
// Implementations must be safe for concurrent use.
type Accounts interface {
	// Get returns the account (for its roles and current epoch).
	Get(ctx context.Context, id string) (account.Account, error)
	// Valid returns the current principal of id if the account is
	// enabled and its epoch is still epoch (see Manager.Principal for
	// which errors end the session).
	Valid(ctx context.Context, id string, epoch int) (policy.Principal, error)
}

// Auditor durably records an event; a nil error means the event is
// durable (audit.Log implements it).
type Auditor interface {
	Record(ctx context.Context, e *audit.Event) error
}

// Options configure a Manager. Zero fields take the defaults named.
type Options struct {
	Accounts Accounts // required
	Audit    Auditor  // required
	Log      *slog.Logger
	Now      func() time.Time // default time.Now

	Idle       time.Duration // idle timeout, default 15 min
	Lifetime   time.Duration // absolute lifetime, default 12 h
	Pending    time.Duration // time to give the second factor, default 5 min
	StepUp     time.Duration // how recent a re-authentication StepUp accepts, default 5 min
	BreakGlass time.Duration // break-the-glass window, default 60 min
	// MaxSessions bounds sessions plus pending logins (default 100000);
	// past it, new sign-ins fail with ErrFull rather than evict anyone.
	MaxSessions int
	// MaxFailures is how many wrong second factors a pending login
	// survives (default 5); then the password must be given again. A
	// session is likewise ended after MaxFailures failed step-ups.
	MaxFailures int
	// Keep, if set, keeps every session sealed outside the process
	// (StoreKeeper), so that sessions outlive a restart and all nodes
	// sharing the store know them. Nil: sessions live only in this
	// process's memory (one node; a restart signs everyone out).
	Keep Keeper
	// Refresh is how old a node's copy of a kept session may be before
	// it is read again (default 2 s): a sign-out, step-up or
	// break-the-glass on one node reaches the others within it. The idle
	// timer is written at most once a minute, so across nodes the idle
	// timeout holds to within a minute.
	Refresh time.Duration
	// ReasonHash returns the keyed hash under which a break-the-glass
	// reason is recorded (the free text never is), e.g. hex of
	// barrier.Token("break-glass-reason", reason), like the audit's query
	// hashes. Nil: HMAC-SHA256 under a random key per process (hashes then
	// compare only within one run).
	ReasonHash func(reason string) string
}

// Manager keeps sessions. It is safe for concurrent use.
type Manager struct {
	o   Options
	cop *http.CrossOriginProtection

	mu   sync.Mutex
	recs map[[32]byte]*record
}

// record is one session or pending login.
type record struct {
	pending  bool   // password given, second factor not yet
	fails    int    // wrong second factors (pending) or failed step-ups (session)
	user     string // user id
	roles    []string
	epoch    int    // account epoch at sign-in
	method   string // "password", "password+totp", "passkey", ...
	mfa      bool   // a second factor was proved
	id       string // public session id (audit, Principal.SessionID)
	csrf     string
	source   string
	created  time.Time
	seen     time.Time // last request (idle timer)
	authTime time.Time // last proof of identity (sign-in or step-up)
	stepBy   string    // method of the last step-up
	bg       *policy.BreakGlass
	loaded   time.Time // when last read from the Keeper
	saved    time.Time // the idle timer as last written to the Keeper
}

// New returns a Manager; it reports a missing Accounts or Audit.
func New(o Options) (*Manager, error) {
	if o.Accounts == nil || o.Audit == nil {
		return nil, errors.New("session: Options.Accounts and Options.Audit are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Idle, 15*time.Minute)
	def(&o.Lifetime, 12*time.Hour)
	def(&o.Pending, 5*time.Minute)
	def(&o.StepUp, 5*time.Minute)
	def(&o.BreakGlass, 60*time.Minute)
	def(&o.Refresh, 2*time.Second)
	if o.MaxSessions <= 0 {
		o.MaxSessions = 100000
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.ReasonHash == nil {
		key := make([]byte, 32)
		rand.Read(key)
		o.ReasonHash = func(reason string) string {
			h := hmac.New(sha256.New, key)
			h.Write([]byte(reason))
			return hex.EncodeToString(h.Sum(nil)[:16])
		}
	}
	return &Manager{o: o, cop: http.NewCrossOriginProtection(), recs: map[[32]byte]*record{}}, nil
}

// Begin records that this browser gave user's correct password and must
// now give a second factor (see Pending and Complete). It replaces any
// session the browser had.
func (m *Manager) Begin(w http.ResponseWriter, r *http.Request, user string) error {
	now := m.o.Now()
	rec := &record{pending: true, user: user, csrf: randText(), source: sourceOf(r), created: now, seen: now}
	return m.install(w, r, rec)
}

// Pending returns the user whose password this browser gave and who has
// not yet given a second factor.
func (m *Manager) Pending(r *http.Request) (user string, ok bool) {
	m.sync(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	_, rec := m.lookup(r)
	if rec == nil || !rec.pending || m.o.Now().Sub(rec.created) >= m.o.Pending {
		return "", false
	}
	return rec.user, true
}

// Fail counts a wrong second factor against the browser's pending login
// and reports how many tries are left; at zero the pending login is gone.
func (m *Manager) Fail(r *http.Request) (left int) {
	m.sync(r)
	m.mu.Lock()
	k, rec := m.lookup(r)
	if rec == nil || !rec.pending {
		m.mu.Unlock()
		return 0
	}
	rec.fails++
	snap := *rec
	m.mu.Unlock()
	if snap.fails >= m.o.MaxFailures {
		m.remove(r.Context(), k, rec, false)
		return 0
	}
	if err := m.save(r.Context(), k, snap); err != nil {
		m.o.Log.Error("session: keeping a failure count failed", "err", err)
	}
	return m.o.MaxFailures - snap.fails
}

// Complete finishes a sign-in with a proved second factor (method "totp",
// "recovery" or "passkey"). With a pending login for user the session's
// method becomes "password+"+method; with none, only "passkey" may
// complete (a passkey with user verification is two factors by itself).
// A pending login for another user gives ErrMismatch.
func (m *Manager) Complete(w http.ResponseWriter, r *http.Request, user, method string) error {
	m.sync(r)
	m.mu.Lock()
	_, rec := m.lookup(r)
	var pendingUser string
	if rec != nil && rec.pending && m.o.Now().Sub(rec.created) < m.o.Pending {
		pendingUser = rec.user
	}
	m.mu.Unlock()
	switch {
	case pendingUser == user:
		method = "password+" + method
	case pendingUser != "":
		return ErrMismatch
	case method != "passkey":
		return ErrNoSession
	}
	return m.Start(w, r, user, method, true)
}

// Start signs user in on this browser: it records a "login" audit event
// (failing with ErrAudit, and changing nothing, if it cannot), replaces any
// session or pending login the browser had with a new one under a new
// cookie, and sets the cookie. mfa says whether a second factor was
// proved. Any sign-in method (password, SSO, passkey) ends here.
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, user, method string, mfa bool) error {
	acct, err := m.o.Accounts.Get(r.Context(), user)
	if err != nil {
		return err
	}
	now := m.o.Now()
	rec := &record{user: user, roles: acct.Roles, epoch: acct.Epoch, method: method, mfa: mfa,
		id: randText()[:22], csrf: randText(), source: sourceOf(r), created: now, seen: now, authTime: now}
	ev := m.event(rec, "login", "console sign-in")
	ev.UserAgent = r.UserAgent()
	if err := m.o.Audit.Record(r.Context(), ev); err != nil {
		m.o.Log.Error("session: audit of sign-in failed", "err", err)
		return ErrAudit
	}
	return m.install(w, r, rec)
}

// Elevate marks the browser's session as proved with a second factor
// (after the user enrolled and confirmed one), under a new cookie.
func (m *Manager) Elevate(w http.ResponseWriter, r *http.Request, method string) error {
	m.sync(r)
	m.mu.Lock()
	_, rec := m.lookup(r)
	if rec == nil || rec.pending || m.expiry(rec, m.o.Now()) != "" {
		m.mu.Unlock()
		return ErrNoSession
	}
	user := rec.user
	m.mu.Unlock()
	return m.Start(w, r, user, method, true)
}

// End signs the browser out: the session is removed, the cookie cleared
// and, for a full session, a "logout" event records why (or, if the
// session had already expired, the automatic logoff's reason).
func (m *Manager) End(w http.ResponseWriter, r *http.Request, why string) {
	m.sync(r)
	m.mu.Lock()
	k, rec := m.lookup(r)
	m.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	if rec != nil && m.remove(r.Context(), k, rec, false) && !rec.pending {
		if expired := m.expiry(rec, m.o.Now()); expired != "" {
			why = expired // it had ended already; record why
		}
		m.logoff(r.Context(), rec, why)
	}
}

// Principal returns the signed-in caller of r, resolved afresh through
// Accounts.Valid, and restarts the idle timer. A disabled, revoked or
// deleted account (account.ErrDisabled, ErrRevoked, ErrNotFound) ends the
// session at once; any other Valid error refuses only this request. A session past its idle timeout or
// absolute lifetime is ended and its automatic logoff audited.
func (m *Manager) Principal(r *http.Request) (policy.Principal, bool) {
	m.sync(r)
	now := m.o.Now()
	m.mu.Lock()
	k, rec := m.lookup(r)
	if rec == nil || rec.pending {
		m.mu.Unlock()
		return policy.Principal{}, false
	}
	if why := m.expiry(rec, now); why != "" {
		m.mu.Unlock()
		if m.remove(r.Context(), k, rec, true) {
			m.logoff(r.Context(), rec, why)
		}
		return policy.Principal{}, false
	}
	rec.seen = now
	persist := m.o.Keep != nil && now.Sub(rec.saved) >= time.Minute
	if persist {
		rec.saved = now
	}
	s := *rec
	m.mu.Unlock()
	if persist {
		if err := m.save(r.Context(), k, s); err != nil {
			m.o.Log.Error("session: keeping the idle timer failed", "err", err)
		}
	}
	p, err := m.o.Accounts.Valid(r.Context(), s.user, s.epoch)
	if err != nil && !errors.Is(err, account.ErrDisabled) && !errors.Is(err, account.ErrRevoked) && !errors.Is(err, account.ErrNotFound) {
		// The directory could not answer: refuse this request, keep
		// the session.
		m.o.Log.Error("session: account check failed", "err", err)
		return policy.Principal{}, false
	}
	if err != nil {
		if m.remove(r.Context(), k, rec, false) {
			m.logoff(r.Context(), &s, "session ended: account disabled or sessions revoked")
		}
		return policy.Principal{}, false
	}
	p.Method, p.MFA, p.AuthTime, p.SessionID = s.method, s.mfa, s.authTime, s.id
	if s.bg.Active(now) {
		bg := *s.bg
		p.BreakGlass = &bg
	}
	return p, true
}

// install stores rec under a fresh cookie, dropping the browser's old
// record (a full session of another user is audited as signed out), and
// sets the cookie.
func (m *Manager) install(w http.ResponseWriter, r *http.Request, rec *record) error {
	raw := make([]byte, 32)
	rand.Read(raw)
	key := sha256.Sum256(raw)
	m.sync(r)
	m.mu.Lock()
	oldKey, old := m.lookup(r)
	n := len(m.recs)
	m.mu.Unlock()
	if old != nil && m.remove(r.Context(), oldKey, old, false) && !old.pending && old.user != rec.user {
		m.logoff(r.Context(), old, "signed out: another sign-in on the same browser")
	}
	if n >= m.o.MaxSessions {
		m.sweepMemory(r.Context())
	}
	now := m.o.Now()
	rec.loaded, rec.saved = now, rec.seen
	m.mu.Lock()
	full := len(m.recs) >= m.o.MaxSessions
	if !full {
		m.recs[key] = rec
	}
	snap := *rec
	m.mu.Unlock()
	if full {
		return ErrFull
	}
	if err := m.save(r.Context(), key, snap); err != nil {
		m.mu.Lock()
		delete(m.recs, key)
		m.mu.Unlock()
		m.o.Log.Error("session: keeping a new session failed", "err", err)
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return nil
}

// event returns an audit event about rec.
func (m *Manager) event(rec *record, interaction, desc string) *audit.Event {
	return &audit.Event{Time: m.o.Now(), Interaction: interaction, Action: "E", Outcome: audit.Success,
		OutcomeDesc: desc, UserID: rec.user, Roles: rec.roles, SourceIP: rec.source, AuthMethod: rec.method,
		Allowed: true, Policies: []string{"session"}}
}
