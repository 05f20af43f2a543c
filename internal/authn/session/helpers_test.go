package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
)

// memAccounts is an in-memory Accounts.
type memAccounts struct {
	mu     sync.Mutex
	accts  map[string]account.Account
	outage bool // Valid fails as if the store were down
}

func (a *memAccounts) Get(_ context.Context, id string) (account.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct, ok := a.accts[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return acct, nil
}

func (a *memAccounts) Valid(_ context.Context, id string, epoch int) (policy.Principal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.outage {
		return policy.Principal{}, errors.New("store unavailable")
	}
	acct, ok := a.accts[id]
	if !ok || acct.Disabled || acct.Epoch != epoch {
		return policy.Principal{}, account.ErrDisabled
	}
	return policy.Principal{UserID: id, Roles: acct.Roles}, nil
}

func (a *memAccounts) disable(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct := a.accts[id]
	acct.Disabled = true
	a.accts[id] = acct
}

// memAudit records events; fail makes Record fail.
type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
	fail   bool
}

func (l *memAudit) Record(_ context.Context, e *audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return audit.ErrUnavailable
	}
	l.events = append(l.events, *e)
	return nil
}

func (l *memAudit) find(interaction string) []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []audit.Event
	for _, e := range l.events {
		if e.Interaction == interaction {
			out = append(out, e)
		}
	}
	return out
}

// clock is a controllable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	m     *Manager
	accts *memAccounts
	log   *memAudit
	clk   *clock
}

func newFixture(t testing.TB, o Options) *fixture {
	t.Helper()
	f := &fixture{
		accts: &memAccounts{accts: map[string]account.Account{
			"alice": {ID: "alice", Roles: []string{"physician"}, Epoch: 3},
			"bob":   {ID: "bob", Roles: []string{"auditor"}},
		}},
		log: &memAudit{},
		clk: &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)},
	}
	o.Accounts, o.Audit, o.Now = f.accts, f.log, f.clk.Now
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

// browser carries one cookie jar's worth of cookies between calls.
type browser struct{ cookies map[string]*http.Cookie }

func newBrowser() *browser { return &browser{cookies: map[string]*http.Cookie{}} }

func (b *browser) req(method string) *http.Request {
	r := httptest.NewRequest(method, "https://console.example/x", nil)
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	return r
}

// keep stores the cookies a response set (MaxAge<0 deletes).
func (b *browser) keep(w *httptest.ResponseRecorder) []*http.Cookie {
	cs := w.Result().Cookies()
	for _, c := range cs {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return cs
}

// signIn starts a session for user in a new browser.
func (f *fixture) signIn(t *testing.T, user string, mfa bool) *browser {
	t.Helper()
	b := newBrowser()
	w := httptest.NewRecorder()
	if err := f.m.Start(w, b.req("POST"), user, "password+totp", mfa); err != nil {
		t.Fatal(err)
	}
	b.keep(w)
	return b
}
