package passkey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/policy"
)

// directory is an in-memory Directory and Handles.
type directory struct {
	mu    sync.Mutex
	accts map[string]account.Account
	mfa   map[string]account.MFA
	lists int // calls of List
}

func newDirectory(accts ...account.Account) *directory {
	d := &directory{accts: map[string]account.Account{}, mfa: map[string]account.MFA{}}
	for _, a := range accts {
		d.accts[a.ID] = a
	}
	return d
}

func (d *directory) Get(_ context.Context, id string) (account.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accts[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return a, nil
}

func (d *directory) MFA(_ context.Context, id string) (account.MFA, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.accts[id]; !ok {
		return account.MFA{}, account.ErrNotFound
	}
	return clone(d.mfa[id]), nil
}

func (d *directory) UpdateMFA(_ context.Context, id string, fn func(*account.MFA) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.accts[id]; !ok {
		return account.ErrNotFound
	}
	m := clone(d.mfa[id])
	if err := fn(&m); err != nil {
		return err
	}
	d.mfa[id] = m
	a := d.accts[id]
	a.MFAEnrolled = nil
	if len(m.Passkeys) > 0 {
		a.MFAEnrolled = []string{"passkey"}
	}
	d.accts[id] = a
	return nil
}

func (d *directory) List(context.Context) ([]account.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lists++
	var out []account.Account
	for _, a := range d.accts {
		out = append(out, a)
	}
	return out, nil
}

func (d *directory) UserByHandle(_ context.Context, handle []byte) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, m := range d.mfa {
		if len(m.WebAuthnID) > 0 && bytes.Equal(m.WebAuthnID, handle) {
			return id, nil
		}
	}
	return "", account.ErrNotFound
}

func (d *directory) passkeys(id string) []json.RawMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mfa[id].Passkeys
}

func clone(m account.MFA) account.MFA {
	b, _ := json.Marshal(m)
	var c account.MFA
	json.Unmarshal(b, &c)
	return c
}

// sessions reads the signed-in user (X-Test-User, with X-Test-MFA "1" if
// the session proved a second factor) and the pending login
// (X-Test-Pending) from test headers, and remembers completed logins with
// the method session.Manager would give them.
type sessions struct {
	mu        sync.Mutex
	completed []string // "user method"
	failAudit bool     // Complete fails as if the audit log were down
	elevated  []string // "user method" of Elevate calls
	stepups   []string // "user method" of Reauthenticated calls
	fails     int      // calls of Fail
}

func (*sessions) Principal(r *http.Request) (policy.Principal, bool) {
	u := r.Header.Get("X-Test-User")
	return policy.Principal{UserID: u, Method: "password", MFA: r.Header.Get("X-Test-MFA") == "1"}, u != ""
}

func (*sessions) Pending(r *http.Request) (string, bool) {
	u := r.Header.Get("X-Test-Pending")
	return u, u != ""
}

func (s *sessions) Complete(_ http.ResponseWriter, r *http.Request, user, method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAudit {
		return session.ErrAudit
	}
	switch p := r.Header.Get("X-Test-Pending"); p {
	case user:
		method = "password+" + method
	case "":
	default:
		return session.ErrMismatch
	}
	s.completed = append(s.completed, user+" "+method)
	return nil
}

func (s *sessions) Fail(*http.Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails++
	return 5 - s.fails
}

func (s *sessions) Elevate(_ http.ResponseWriter, r *http.Request, method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.elevated = append(s.elevated, r.Header.Get("X-Test-User")+" "+method)
	return nil
}

func (s *sessions) Reauthenticated(r *http.Request, method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stepups = append(s.stepups, r.Header.Get("X-Test-User")+" "+method)
	return nil
}

// auditor keeps events; fail makes Record fail.
type auditor struct {
	mu     sync.Mutex
	events []audit.Event
	fail   bool
}

func (a *auditor) Record(_ context.Context, e *audit.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return errors.New("disk full")
	}
	a.events = append(a.events, *e)
	return nil
}

func (a *auditor) last() audit.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.events) == 0 {
		return audit.Event{}
	}
	return a.events[len(a.events)-1]
}

const origin = "https://phivault.test"

// rig is a Service over fakes with a controllable clock.
type rig struct {
	t     testing.TB
	svc   *Service
	h     http.Handler
	dir   *directory
	sess  *sessions
	audit *auditor
	now   time.Time
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{t: t, sess: &sessions{}, audit: &auditor{}, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	r.dir = newDirectory(
		account.Account{ID: "alice", Name: "Alice A", Roles: []string{"physician"}},
		account.Account{ID: "bob", Name: "Bob B", Roles: []string{"nurse"}},
		account.Account{ID: "carol", Name: "Carol C", Roles: []string{"nurse"}, Disabled: true},
	)
	svc, err := New(Config{RPID: "phivault.test", RPName: "phivault", Origins: []string{origin},
		Directory: r.dir, Handles: r.dir, Sessions: r.sess, Audit: r.audit, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	mux := http.NewServeMux()
	for p, h := range svc.Routes() {
		mux.Handle(p, h)
	}
	r.h = mux
	return r
}

// call is one request; hdr holds extra headers ("X-Test-User": "alice").
type call struct {
	path   string
	body   string
	cookie string
	hdr    map[string]string
}

// do runs c with the CSRF header and origin a browser would send and
// returns the status, body and ceremony cookie set (if any).
func (r *rig) do(c call) (int, []byte, string) {
	r.t.Helper()
	req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(CSRFHeader, "1")
	req.Header.Set("Origin", origin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie})
	}
	for k, v := range c.hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	var cookie string
	for _, ck := range w.Result().Cookies() {
		if ck.Name == CookieName && ck.MaxAge > 0 {
			cookie = ck.Value
		}
	}
	return w.Code, w.Body.Bytes(), cookie
}

// begin runs a begin step and fails the test unless it answers 200.
func (r *rig) begin(path string, hdr map[string]string) ([]byte, string) {
	r.t.Helper()
	code, body, cookie := r.do(call{path: path, hdr: hdr})
	if code != http.StatusOK || cookie == "" {
		r.t.Fatalf("%s: %d %s (cookie %q)", path, code, body, cookie)
	}
	return body, cookie
}

// register gives user the passkey k.
func (r *rig) register(user string, k *softKey) {
	r.t.Helper()
	as := map[string]string{"X-Test-User": user, "X-Test-MFA": "1"}
	opts, cookie := r.begin("/passkey/register/begin", as)
	code, body, _ := r.do(call{path: "/passkey/register/finish", body: string(k.create(opts)), cookie: cookie, hdr: as})
	if code != http.StatusCreated {
		r.t.Fatalf("register finish: %d %s", code, body)
	}
}
