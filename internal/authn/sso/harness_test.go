package sso

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/authn/account"
)

// tokenTap sits between phivault and the provider. It records the last
// token endpoint response and, when told to, hands phivault another
// (genuine, earlier captured) response instead: an attacker injecting a
// token into someone else's login.
type tokenTap struct {
	base    http.RoundTripper
	mu      sync.Mutex
	last    []byte
	replace []byte
}

func (t *tokenTap) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || r.URL.Path != "/oauth/token" {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = body
	if t.replace != nil {
		body = t.replace
		resp.StatusCode = http.StatusOK
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

func (t *tokenTap) lastResponse() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.last)
}

func (t *tokenTap) inject(body []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replace = body
}

// rig is phivault's SSO routes on a TLS server, in front of a real provider.
type rig struct {
	t        testing.TB
	idp      *testIDP
	rp       *httptest.Server
	rpH      *lazyHandler
	accounts *memAccounts
	sessions *memSessions
	audit    *memAudit
	logs     *bytes.Buffer
	logMu    *sync.Mutex
}

var testRoleMap = map[string][]string{
	"clinicians": {"physician"},
	"nurses":     {"nurse"},
	"it-admins":  {"administrator"},
	"auditors":   {"auditor"},
}

var testCookieKey = account.Secret(bytes.Repeat([]byte{7}, 32))

func newRig(t testing.TB, users ...*idpUser) *rig {
	t.Helper()
	rpH := &lazyHandler{}
	rp := httptest.NewTLSServer(rpH)
	t.Cleanup(rp.Close)
	redirect := rp.URL + CallbackPath
	idp := startIDP(t, map[string]string{"phivault": redirect, "other": redirect}, users...)
	r := &rig{t: t, idp: idp, rp: rp, rpH: rpH, accounts: &memAccounts{}, sessions: &memSessions{}, audit: &memAudit{}, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	return r
}

func (r *rig) config(clientID string) Config {
	return Config{
		Issuer:       r.idp.srv.URL,
		ClientID:     clientID,
		ClientSecret: account.Secret("secret-" + clientID),
		RedirectURL:  r.rp.URL + CallbackPath,
		RoleMap:      testRoleMap,
		CookieKey:    testCookieKey,
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// handler builds a Handler for clientID over tap and mounts it.
func (r *rig) handler(clientID string, tap *tokenTap) *Handler {
	r.t.Helper()
	h, err := New(r.config(clientID), Deps{
		Accounts: r.accounts, Sessions: r.sessions, Audit: r.audit,
		Log:        slog.New(slog.NewJSONHandler(lockedWriter{r.logMu, r.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HTTPClient: &http.Client{Transport: tap},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *rig) mount(h *Handler) {
	mux := http.NewServeMux()
	for p, x := range h.Routes() {
		mux.Handle(p, x)
	}
	mux.HandleFunc("GET /console/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "console") })
	r.rpH.set(mux)
}

func (r *rig) tap() *tokenTap { return &tokenTap{base: r.idp.srv.Client().Transport} }

func (r *rig) logText() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.logs.String()
}

// browser is a user agent with a cookie jar that trusts the test servers
// (they share httptest's certificate).
type browser struct {
	t   testing.TB
	r   *rig
	jar *cookiejar.Jar
	c   *http.Client
}

func (r *rig) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: r.t, r: r, jar: jar}
	b.c = &http.Client{Jar: jar, Transport: r.idp.srv.Client().Transport,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Path == CallbackPath {
				return http.ErrUseLastResponse // the test delivers the callback itself
			}
			return nil
		}}
	return b
}

// authorize goes from /sso/login (with query q) through the provider's
// login page as username and returns the callback URL the provider
// redirects to, without visiting it.
func (b *browser) authorize(username, q string) string {
	b.t.Helper()
	resp, err := b.c.Get(b.r.rp.URL + "/sso/login" + q)
	if err != nil {
		b.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || id == "" || !strings.Contains(string(page), "password") {
		b.t.Fatalf("expected the provider's login page, got %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	resp, err = b.c.PostForm(b.r.idp.srv.URL+"/login/username", url.Values{"username": {username}, "password": {testPassword}, "id": {id}})
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, b.r.rp.URL+CallbackPath) {
		b.t.Fatalf("provider did not redirect to the callback: %d %q", resp.StatusCode, loc)
	}
	return loc
}

// loginCookie returns the browser's current SSO login cookie value.
func (b *browser) loginCookie() string {
	u, _ := url.Parse(b.r.rp.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == cookieName {
			return c.Value
		}
	}
	return ""
}

// deliver requests the callback URL with the given login cookie value
// ("" for none), not following redirects.
func (b *browser) deliver(callback, cookie string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, callback, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	}
	c := &http.Client{Transport: b.c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// login runs the whole flow for username and returns the callback's response.
func (b *browser) login(username string) (*http.Response, string) {
	b.t.Helper()
	cb := b.authorize(username, "")
	return b.deliver(cb, b.loginCookie())
}
