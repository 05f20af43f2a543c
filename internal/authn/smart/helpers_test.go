package smart

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// clock is a controllable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeLogin signs in whoever holds the "session" cookie naming a user in
// users; LoginURL points at /login.
type fakeLogin struct {
	mu    sync.Mutex
	users map[string]policy.Principal // by session id
}

func (l *fakeLogin) User(r *http.Request) (policy.Principal, bool) {
	c, err := r.Cookie("session")
	if err != nil {
		return policy.Principal{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.users[c.Value]
	return p, ok
}

func (l *fakeLogin) LoginURL(next string) string { return "/login?next=" + url.QueryEscape(next) }

// fakeAccounts is an account directory with epochs and disabling.
type fakeAccounts struct {
	mu    sync.Mutex
	accts map[string]account.Account
}

func (a *fakeAccounts) Get(_ context.Context, id string) (account.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ac, ok := a.accts[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return ac, nil
}

func (a *fakeAccounts) Valid(ctx context.Context, id string, epoch int) (policy.Principal, error) {
	ac, err := a.Get(ctx, id)
	if err != nil {
		return policy.Principal{}, err
	}
	if ac.Disabled || ac.Epoch != epoch {
		return policy.Principal{}, errors.New("revoked")
	}
	return policy.Principal{UserID: ac.ID, Roles: ac.Roles, Patient: ac.Patient, Practitioner: ac.Practitioner}, nil
}

func (a *fakeAccounts) bump(id string) {
	a.mu.Lock()
	ac := a.accts[id]
	ac.Epoch++
	a.accts[id] = ac
	a.mu.Unlock()
}

// recorder is an audit log that keeps events and can be made to fail.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	broken bool
}

func (r *recorder) Record(_ context.Context, e *audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken {
		return audit.ErrUnavailable
	}
	r.events = append(r.events, *e)
	return nil
}

func (r *recorder) last() audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return audit.Event{}
	}
	return r.events[len(r.events)-1]
}

func (r *recorder) setBroken(b bool) { r.mu.Lock(); r.broken = b; r.mu.Unlock() }

type harness struct {
	audit *recorder
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	clock *clock
	login *fakeLogin
	accts *fakeAccounts
	base  string
	open  func() *Server // reopens the server over the same store (a restart)
}

var (
	drPat   = account.Account{ID: "dr.who", Roles: []string{"physician"}, Practitioner: "pr1", Epoch: 3}
	patient = account.Account{ID: "pat.jones", Roles: []string{"patient"}, Patient: "p42", Epoch: 1}
)

func newHarness(t testing.TB, tweak ...func(*Config)) *harness {
	return newHarnessOn(t, "sqlite", tweak...)
}

// newHarnessOn runs the server over a SQLite store, or an in-memory one
// when backend is "mem".
func newHarnessOn(t testing.TB, backend string, tweak ...func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	kp := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st store.Backend = newMemStore()
	if backend == "sqlite" {
		if st, err = sqlite.Open(filepath.Join(dir, "db")); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(context.Background(), kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{clock: &clock{t: time.Now().Truncate(time.Second)},
		login: &fakeLogin{users: map[string]policy.Principal{
			"s-dr":  {UserID: drPat.ID, Roles: drPat.Roles, Practitioner: "pr1", SessionID: "s-dr", MFA: true},
			"s-pat": {UserID: patient.ID, Roles: patient.Roles, Patient: "p42", SessionID: "s-pat"},
		}},
		audit: &recorder{},
		accts: &fakeAccounts{accts: map[string]account.Account{drPat.ID: drPat, patient.ID: patient}},
	}
	var mu sync.RWMutex
	var handler http.Handler = http.NotFoundHandler()
	h.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		hd := handler
		mu.RUnlock()
		hd.ServeHTTP(w, r)
	}))
	t.Cleanup(h.ts.Close)
	h.base = h.ts.URL + "/fhir"
	h.open = func() *Server {
		c := Config{Store: st, Barrier: b, Issuer: h.ts.URL, Login: h.login, Accounts: h.accts, Audit: h.audit, Now: h.clock.Now}
		for _, f := range tweak {
			f(&c)
		}
		s, err := Open(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		routes := s.Routes()
		routes["GET /login"] = http.HandlerFunc(h.loginPage)
		routes["POST /login"] = http.HandlerFunc(h.loginPage)
		hd := server.Handler(server.Config{FHIR: http.HandlerFunc(whoami), Routes: routes, Auth: s, Audit: audit.NewLog(st, 0),
			Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()})
		mu.Lock()
		handler = hd
		mu.Unlock()
		return s
	}
	h.srv = h.open()
	return h
}

func (h *harness) addClient(t testing.TB, c Client) (Client, Secret) {
	t.Helper()
	c, sec, err := h.srv.Clients().Add(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return c, sec
}

// browser is a TLS client holding a session cookie that does not follow
// redirects, so tests see every Location.
func (h *harness) browser(t testing.TB, session string) *http.Client {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(h.ts.URL)
	if session != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: session}})
	}
	tr := h.ts.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: h.ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	return &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// formOf returns the inputs of the consent form.
func formOf(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(string(b), -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

var inputRE = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*?(?:value="([^"]*)")?>`)

// whoami stands in for the FHIR API: it answers with the principal the
// server's bearer-token check produced.
func whoami(w http.ResponseWriter, r *http.Request) {
	p, _ := policy.PrincipalFrom(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"user": p.UserID, "client": p.ClientID, "patient": p.Patient, "scopes": p.Scopes, "method": p.Method})
}

// loginPage is a stand-in sign-in page: GET shows a button, POST signs in
// as the patient user with a SameSite=Strict cookie (like the console's)
// and goes on to next.
func (h *harness) loginPage(w http.ResponseWriter, r *http.Request) {
	next := r.FormValue("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form method="post" action="/login"><input type="hidden" name="next" value="%s"><button id="signin">Sign in</button></form>`, html.EscapeString(next))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "session", Value: "s-pat", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

var codeParam = regexp.MustCompile(`[?&]code=([^&]+)`)

// The concrete types cmd/phivault wires in satisfy the interfaces.
var (
	_ Accounts = (*account.Directory)(nil)
	_ Recorder = (*audit.Log)(nil)
)
