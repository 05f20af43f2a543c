package web

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/policy"
)

// memDir is an in-memory account directory (web.Accounts and
// session.Accounts).
type memDir struct {
	mu        sync.Mutex
	accts     map[string]account.Account
	pw        map[string]string
	mfa       map[string]account.MFA
	throttled bool
	logins    int
}

var _ Accounts = (*memDir)(nil)
var _ session.Accounts = (*memDir)(nil)

func (d *memDir) Login(_ context.Context, id string, pw account.Password, _ string) (account.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.logins++
	if d.throttled {
		return account.Account{}, account.ErrThrottled
	}
	a, ok := d.accts[id]
	if !ok || a.Disabled || d.pw[id] != string(pw) {
		return account.Account{}, account.ErrBadCredentials
	}
	return a, nil
}

func (d *memDir) Get(_ context.Context, id string) (account.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accts[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return a, nil
}

func (d *memDir) Valid(_ context.Context, id string, epoch int) (policy.Principal, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accts[id]
	if !ok || a.Disabled || a.Epoch != epoch {
		return policy.Principal{}, account.ErrDisabled
	}
	return policy.Principal{UserID: id, Roles: a.Roles}, nil
}

func (d *memDir) MFA(_ context.Context, id string) (account.MFA, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mfa[id], nil
}

func (d *memDir) UpdateMFA(_ context.Context, id string, fn func(*account.MFA) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mfa[id]
	m.Recovery = append([][]byte(nil), m.Recovery...)
	if err := fn(&m); err != nil {
		return err
	}
	d.mfa[id] = m
	return nil
}

type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
}

func (l *memAudit) Record(_ context.Context, e *audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
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

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// Test accounts: alice (physician, TOTP), nora (nurse, no second factor),
// aud (auditor, no second factor). Every password is pw+id.
var aliceSecret = []byte("12345678901234567890")

const recovery = "abcde-fghij"

type env struct {
	dir  *memDir
	log  *memAudit
	clk  *clock
	m    *session.Manager
	srv  *httptest.Server
	mux  *http.ServeMux
	opts Options
}

func newEnv(t testing.TB) *env {
	t.Helper()
	rec := sha256.Sum256([]byte("abcdefghij"))
	e := &env{
		dir: &memDir{
			accts: map[string]account.Account{
				"alice": {ID: "alice", Roles: []string{"physician"}, Epoch: 1},
				"nora":  {ID: "nora", Roles: []string{"nurse"}},
				"aud":   {ID: "aud", Roles: []string{"auditor"}},
			},
			pw:  map[string]string{"alice": "pwalice", "nora": "pwnora", "aud": "pwaud"},
			mfa: map[string]account.MFA{"alice": {TOTPSecret: aliceSecret, Recovery: [][]byte{rec[:]}}},
		},
		log: &memAudit{},
		clk: &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)},
	}
	m, err := session.New(session.Options{Accounts: e.dir, Audit: e.log, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	e.opts = Options{Sessions: m, Accounts: e.dir, Audit: e.log, Now: e.clk.Now}
	routes, err := Handler(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.Handle(p, h)
	}
	e.mux = mux
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// code returns the TOTP code of secret at the env's clock plus off steps.
func (e *env) code(t testing.TB, secret []byte, off int) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(b32.EncodeToString(secret), e.clk.Now().Add(time.Duration(off)*30*time.Second),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// browser is a client with a cookie jar that remembers the last page.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	body string // last page
	path string // where the last request landed
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	return &browser{t: t, e: e, c: &c}
}

var csrfRE = regexp.MustCompile(`name="csrf(?:" value|-token" content)="([^"]+)"`)

func (b *browser) do(req *http.Request) int {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.body, b.path = string(body), resp.Request.URL.Path
	return resp.StatusCode
}

func (b *browser) get(path string) int {
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	return b.do(req)
}

// post submits form to path with the CSRF token of the last page (unless
// form sets "csrf" itself).
func (b *browser) post(path string, form url.Values) int {
	b.t.Helper()
	if _, set := form["csrf"]; !set {
		if m := csrfRE.FindStringSubmatch(b.body); m != nil {
			form.Set("csrf", m[1])
		}
	}
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// signIn signs user in with password (and alice's TOTP when asked).
func (b *browser) signIn(user string) {
	b.t.Helper()
	b.get("/login")
	b.post("/login", url.Values{"user": {user}, "password": {"pw" + user}})
	if b.path == "/login/totp" {
		b.post("/login/totp", url.Values{"code": {b.e.code(b.t, aliceSecret, 0)}})
	}
	if b.path != "/console/" && b.path != "/account/totp" {
		b.t.Fatalf("sign-in of %s landed on %s:\n%s", user, b.path, b.body)
	}
}

func regexpMust(re string) *regexp.Regexp { return regexp.MustCompile(re) }

// reqWithJar returns a GET request carrying b's cookies.
func reqWithJar(t *testing.T, b *browser) *http.Request {
	t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL+"/console/", nil)
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	return req
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func getRequest(path string) *http.Request {
	return httptest.NewRequest("GET", "https://console.example"+path, nil)
}
