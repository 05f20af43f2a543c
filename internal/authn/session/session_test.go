package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/policy"
)

func TestCookieAttributesAndHashOnly(t *testing.T) {
	f := newFixture(t, Options{})
	w := httptest.NewRecorder()
	if err := f.m.Start(w, httptest.NewRequest("POST", "https://console.example/login", nil), "alice", "password", false); err != nil {
		t.Fatal(err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies = %d, want 1", len(cs))
	}
	c := cs[0]
	got := []any{c.Name, c.Path, c.Secure, c.HttpOnly, c.SameSite, c.Domain}
	want := []any{"__Host-phivault_session", "/", true, true, http.SameSiteStrictMode, ""}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("cookie attributes (-want +got):\n%s", d)
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(raw) != 32 {
		t.Fatalf("cookie value is not 32 random bytes: %d bytes, %v", len(raw), err)
	}
	f.m.mu.Lock()
	_, byHash := f.m.recs[sha256.Sum256(raw)]
	var byRaw bool
	for k := range f.m.recs {
		byRaw = byRaw || string(k[:]) == string(raw)
	}
	f.m.mu.Unlock()
	if !byHash || byRaw {
		t.Errorf("server keeps hash=%v raw=%v; want only the SHA-256", byHash, byRaw)
	}
	if ev := f.log.find("login"); len(ev) != 1 || ev[0].UserID != "alice" {
		t.Errorf("login events = %+v", ev)
	}
}

func TestPrincipalCarriesSession(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	p, ok := f.m.Principal(b.req("GET"))
	if !ok {
		t.Fatal("no principal after sign-in")
	}
	if p.UserID != "alice" || !p.MFA || p.Method != "password+totp" || p.SessionID == "" || !p.AuthTime.Equal(f.clk.Now()) || p.BreakGlass != nil {
		t.Errorf("principal = %+v", p)
	}
	if _, ok := f.m.Principal(newBrowser().req("GET")); ok {
		t.Error("a browser without a cookie got a principal")
	}
	forged := newBrowser()
	forged.cookies[CookieName] = &http.Cookie{Name: CookieName, Value: strings.Repeat("A", 43)}
	if _, ok := f.m.Principal(forged.req("GET")); ok {
		t.Error("a made-up cookie got a principal")
	}
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name  string
		step  time.Duration // time between requests
		steps int           // requests that must still work
		why   string
	}{
		{"idle at 15 min", 15 * time.Minute, 0, LogoffIdle},
		{"active just under idle", 14*time.Minute + 59*time.Second, 48, LogoffLifetime},
		{"absolute at 12 h despite activity", 10 * time.Minute, 71, LogoffLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			b := f.signIn(t, "alice", true)
			start := f.clk.Now()
			for i := range tt.steps {
				f.clk.Add(tt.step)
				if _, ok := f.m.Principal(b.req("GET")); !ok {
					t.Fatalf("request %d at +%v refused", i+1, f.clk.Now().Sub(start))
				}
			}
			f.clk.Add(tt.step)
			if _, ok := f.m.Principal(b.req("GET")); ok {
				t.Fatalf("session still alive at +%v", f.clk.Now().Sub(start))
			}
			ev := f.log.find("logout")
			if len(ev) != 1 || ev[0].OutcomeDesc != tt.why || ev[0].UserID != "alice" {
				t.Fatalf("logout events = %+v, want one %q", ev, tt.why)
			}
			if _, ok := f.m.Principal(b.req("GET")); ok || len(f.log.find("logout")) != 1 {
				t.Error("an ended session came back or was audited twice")
			}
		})
	}
}

func TestSweepAuditsAbandonedSessions(t *testing.T) {
	f := newFixture(t, Options{})
	f.signIn(t, "alice", true)
	b := f.signIn(t, "bob", false)
	f.clk.Add(10 * time.Minute)
	f.m.Principal(b.req("GET")) // bob stays active
	f.clk.Add(5 * time.Minute)
	if n := f.m.Sweep(context.Background()); n != 1 {
		t.Fatalf("Sweep ended %d sessions, want 1 (alice idle)", n)
	}
	ev := f.log.find("logout")
	if len(ev) != 1 || ev[0].UserID != "alice" || ev[0].OutcomeDesc != LogoffIdle {
		t.Fatalf("logout events = %+v", ev)
	}
	if _, ok := f.m.Principal(b.req("GET")); !ok {
		t.Error("the active session was swept")
	}
}

func TestDisabledAccountEndsSession(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	f.accts.disable("alice")
	if _, ok := f.m.Principal(b.req("GET")); ok {
		t.Fatal("disabled user still has a principal")
	}
	if ev := f.log.find("logout"); len(ev) != 1 || !strings.Contains(ev[0].OutcomeDesc, "disabled") {
		t.Errorf("logout events = %+v", ev)
	}
	f.m.mu.Lock()
	n := len(f.m.recs)
	f.m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d records left", n)
	}
}

func TestEnd(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	old := b.cookies[CookieName].Value
	w := httptest.NewRecorder()
	f.m.End(w, b.req("POST"), "signed out")
	cs := b.keep(w)
	if len(cs) != 1 || cs[0].Name != CookieName || cs[0].MaxAge >= 0 {
		t.Errorf("End did not clear the cookie: %+v", cs)
	}
	// A copy of the cookie kept from before (another tab, a thief) is dead.
	replay := newBrowser()
	replay.cookies[CookieName] = &http.Cookie{Name: CookieName, Value: old}
	if _, ok := f.m.Principal(replay.req("GET")); ok {
		t.Error("session alive after End")
	}
	if ev := f.log.find("logout"); len(ev) != 1 || ev[0].OutcomeDesc != "signed out" {
		t.Errorf("logout events = %+v", ev)
	}
}

func TestPendingAndComplete(t *testing.T) {
	f := newFixture(t, Options{})
	b := newBrowser()
	w := httptest.NewRecorder()
	if err := f.m.Begin(w, b.req("POST"), "alice"); err != nil {
		t.Fatal(err)
	}
	b.keep(w)
	if u, ok := f.m.Pending(b.req("GET")); !ok || u != "alice" {
		t.Fatalf("Pending = %q, %v", u, ok)
	}
	if _, ok := f.m.Principal(b.req("GET")); ok {
		t.Fatal("a pending login has a principal")
	}
	if err := f.m.Complete(httptest.NewRecorder(), b.req("POST"), "bob", "passkey"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Complete for another user = %v, want ErrMismatch", err)
	}
	old := b.cookies[CookieName].Value
	w = httptest.NewRecorder()
	if err := f.m.Complete(w, b.req("POST"), "alice", "totp"); err != nil {
		t.Fatal(err)
	}
	b.keep(w)
	if b.cookies[CookieName].Value == old {
		t.Error("the cookie was not replaced on sign-in (session fixation)")
	}
	p, ok := f.m.Principal(b.req("GET"))
	if !ok || !p.MFA || p.Method != "password+totp" {
		t.Fatalf("principal = %+v, %v", p, ok)
	}
	stale := newBrowser()
	stale.cookies[CookieName] = &http.Cookie{Name: CookieName, Value: old}
	if _, ok := f.m.Pending(stale.req("GET")); ok {
		t.Error("the pending cookie still works after completion")
	}
	// Without a pending login only a passkey completes.
	if err := f.m.Complete(httptest.NewRecorder(), newBrowser().req("POST"), "alice", "totp"); !errors.Is(err, ErrNoSession) {
		t.Errorf("TOTP without password = %v, want ErrNoSession", err)
	}
	pk := newBrowser()
	w = httptest.NewRecorder()
	if err := f.m.Complete(w, pk.req("POST"), "alice", "passkey"); err != nil {
		t.Fatal(err)
	}
	pk.keep(w)
	if p, ok := f.m.Principal(pk.req("GET")); !ok || p.Method != "passkey" || !p.MFA {
		t.Errorf("passkey principal = %+v, %v", p, ok)
	}
}

func TestPendingLimits(t *testing.T) {
	f := newFixture(t, Options{MaxFailures: 3})
	b := newBrowser()
	w := httptest.NewRecorder()
	f.m.Begin(w, b.req("POST"), "alice")
	b.keep(w)
	for want := 2; want >= 0; want-- {
		if left := f.m.Fail(b.req("POST")); left != want {
			t.Fatalf("Fail left = %d, want %d", left, want)
		}
	}
	if _, ok := f.m.Pending(b.req("GET")); ok {
		t.Error("pending login survived too many wrong codes")
	}
	w = httptest.NewRecorder()
	f.m.Begin(w, b.req("POST"), "alice")
	b.keep(w)
	f.clk.Add(5 * time.Minute)
	if _, ok := f.m.Pending(b.req("GET")); ok {
		t.Error("pending login outlived 5 minutes")
	}
}

func TestAuditFailureRefusesSignIn(t *testing.T) {
	f := newFixture(t, Options{})
	f.log.fail = true
	w := httptest.NewRecorder()
	if err := f.m.Start(w, httptest.NewRequest("POST", "/", nil), "alice", "password", false); !errors.Is(err, ErrAudit) {
		t.Fatalf("Start = %v, want ErrAudit", err)
	}
	if len(w.Result().Cookies()) != 0 || len(f.m.recs) != 0 {
		t.Error("a sign-in that could not be audited left a session")
	}
}

func TestFull(t *testing.T) {
	f := newFixture(t, Options{MaxSessions: 2})
	f.signIn(t, "alice", true)
	f.signIn(t, "bob", true)
	if err := f.m.Start(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil), "bob", "password", false); !errors.Is(err, ErrFull) {
		t.Fatalf("third session = %v, want ErrFull", err)
	}
	f.clk.Add(15 * time.Minute)
	if err := f.m.Start(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil), "bob", "password", false); err != nil {
		t.Fatalf("after expiry = %v", err)
	}
	if n := len(f.log.find("logout")); n != 2 {
		t.Errorf("%d logoffs audited, want 2", n)
	}
}

func FuzzParseCookie(f *testing.F) {
	f.Add(strings.Repeat("A", 43))
	f.Add("")
	f.Add(strings.Repeat("_", 43))
	f.Add(strings.Repeat("A", 42) + "B")
	f.Fuzz(func(t *testing.T, v string) {
		k, ok := parseCookie(v)
		if !ok {
			return
		}
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(raw) != 32 || k != sha256.Sum256(raw) {
			t.Fatalf("accepted %q", v)
		}
		if base64.RawURLEncoding.EncodeToString(raw) != v {
			t.Fatalf("accepted a second spelling %q", v)
		}
	})
}

func TestDirectoryOutageKeepsSession(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	f.accts.outage = true
	if _, ok := f.m.Principal(b.req("GET")); ok {
		t.Fatal("a principal without an answer from the directory")
	}
	f.accts.outage = false
	if _, ok := f.m.Principal(b.req("GET")); !ok {
		t.Fatal("a directory outage ended the session")
	}
	if n := len(f.log.find("logout")); n != 0 {
		t.Errorf("%d logouts audited", n)
	}
}

func TestRequire(t *testing.T) {
	f := newFixture(t, Options{})
	var seen string
	h := f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := policy.PrincipalFrom(r.Context())
		seen = p.UserID
	}))
	b := f.signIn(t, "alice", true)
	tok := f.m.Token(httptest.NewRecorder(), b.req("GET"))
	for _, tt := range []struct {
		name   string
		br     *browser
		method string
		tok    string
		status int
		user   string
	}{
		{"GET signed in", b, "GET", "", 200, "alice"},
		{"POST with token", b, "POST", tok, 200, "alice"},
		{"POST without token", b, "POST", "", 403, ""},
		{"GET anonymous", newBrowser(), "GET", "", 303, ""},
	} {
		seen = ""
		r := tt.br.req(tt.method)
		if tt.tok != "" {
			r.Header.Set(CSRFHeader, tt.tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status || seen != tt.user {
			t.Errorf("%s: %d as %q, want %d as %q", tt.name, w.Code, seen, tt.status, tt.user)
		}
	}
}

func TestSignInOverAnotherUsersSession(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	w := httptest.NewRecorder()
	if err := f.m.Start(w, b.req("POST"), "alice", "password+passkey", true); err != nil {
		t.Fatal(err)
	}
	b.keep(w)
	if n := len(f.log.find("logout")); n != 0 {
		t.Fatalf("a new sign-in of the same user audited %d logouts", n)
	}
	w = httptest.NewRecorder()
	if err := f.m.Start(w, b.req("POST"), "bob", "password", false); err != nil {
		t.Fatal(err)
	}
	b.keep(w)
	ev := f.log.find("logout")
	if len(ev) != 1 || ev[0].UserID != "alice" {
		t.Fatalf("logout events = %+v, want alice's", ev)
	}
	if p, ok := f.m.Principal(b.req("GET")); !ok || p.UserID != "bob" {
		t.Errorf("principal = %+v, %v", p, ok)
	}
	f.m.mu.Lock()
	n := len(f.m.recs)
	f.m.mu.Unlock()
	if n != 1 {
		t.Errorf("%d records, want 1 (old sessions of the browser dropped)", n)
	}
}
