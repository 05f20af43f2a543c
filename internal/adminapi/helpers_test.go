package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// clock is the controllable time of accounts, sessions and the engine.
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

// noFacts answers that no care relationship or consent exists: admin
// calls name no patient.
type noFacts struct{}

func (noFacts) Relationships(context.Context, string, string) ([]string, error) { return nil, nil }
func (noFacts) Consents(context.Context, string) ([]policy.Consent, error)      { return nil, nil }

// env is the API over a real directory (SQLite, sealed), real bearer
// tokens and sessions, the default Cedar policies, behind server.Handler.
type env struct {
	t      *testing.T
	dir    *account.Directory
	tokens *authn.Tokens
	sess   *session.Manager
	log    *audit.Log
	clk    *clock
	st     *sqlite.Backend
	b      *barrier.Barrier
	h      http.Handler
	tok    map[string]string // user id -> bearer token
}

const testPassword = "correct-Horse-battery-91"

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	d := t.TempDir()
	kp := filepath.Join(d, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(d, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(ctx, kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, log: audit.NewLog(st, 5*time.Second), clk: &clock{t: time.Now().UTC()}, st: st, b: b, tok: map[string]string{}}
	o := account.DefaultOptions(e.log)
	o.Now = e.clk.Now
	if e.dir, err = account.Open(ctx, st, b, o); err != nil {
		t.Fatal(err)
	}
	if e.tokens, err = authn.OpenTokens(ctx, st, b); err != nil {
		t.Fatal(err)
	}
	if e.sess, err = session.New(session.Options{Accounts: e.dir, Audit: e.log, Now: e.clk.Now}); err != nil {
		t.Fatal(err)
	}
	eng, err := policy.NewEngine(policy.DefaultPolicies(), noFacts{}, policy.WithClock(e.clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	bearer := &authn.Bearer{Operator: e.tokens, Accounts: e.dir}
	routes, err := Routes(Config{Accounts: e.dir, Auth: bearer, Sessions: e.sess, Policy: eng, Audit: e.log, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	e.h = server.Handler(server.Config{FHIR: http.NotFoundHandler(), Routes: routes, Auth: bearer, Sessions: e.sess,
		Audit: e.log, Log: log, Metrics: server.NewMetrics()})
	for _, a := range []account.Account{
		{ID: "ada", Name: "Ada Admin", Roles: []string{"administrator"}},
		{ID: "sam", Name: "Sam Security", Roles: []string{"security-officer"}},
		{ID: "phil", Name: "Phil Physician", Roles: []string{"physician"}, Practitioner: "pr-1"},
		{ID: "aud", Name: "Audrey Auditor", Roles: []string{"auditor"}},
		{ID: "pia", Name: "Pia Privacy", Roles: []string{"privacy-officer", "auditor"}},
	} {
		e.user(a)
	}
	return e
}

// user creates a and mints it a bearer token with all its roles.
func (e *env) user(a account.Account) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.dir.Create(ctx, a, testPassword, "test-setup"); err != nil {
		e.t.Fatalf("create %s: %v", a.ID, err)
	}
	got, err := e.dir.Get(ctx, a.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _, err := e.tokens.MintAccount(got.ID, got.Roles, got.Epoch, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	e.tok[a.ID] = tok.Reveal()
}

// resp is one answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// diagnostics is the OperationOutcome message of an error answer.
func (r resp) diagnostics() string {
	var oo struct {
		ResourceType string
		Issue        []struct{ Diagnostics string }
	}
	if json.Unmarshal(r.body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		return "(not an OperationOutcome: " + string(r.body) + ")"
	}
	return oo.Issue[0].Diagnostics
}

// do sends a request as user (a bearer token; "" for none) with a JSON
// body (nil: none) and extra headers (name, value pairs).
func (e *env) do(user, method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, "https://phivault.test"+path, rd)
	req.RemoteAddr = "192.0.2.7:4242"
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tok[user])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Cookie" {
			req.Header.Add("Cookie", hdr[i+1])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return resp{w.Code, w.Header(), w.Body.Bytes()}
}

// signIn starts a console session for user and returns its cookie
// header value and CSRF token.
func (e *env) signIn(user string) (cookie, csrf string) {
	e.t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "https://phivault.test/login", nil)
	if err := e.sess.Start(w, r, user, "password+totp", true); err != nil {
		e.t.Fatal(err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == session.CookieName {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		e.t.Fatal("no session cookie set")
	}
	r = httptest.NewRequest(http.MethodGet, "https://phivault.test/console/", nil)
	r.Header.Set("Cookie", cookie)
	return cookie, e.sess.Token(httptest.NewRecorder(), r)
}

// audited returns the audit events recorded so far, as FHIR AuditEvent
// JSON, oldest first.
func (e *env) audited() []string {
	e.t.Helper()
	ctx := context.Background()
	p := e.log.Prover()
	n, err := p.Size(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	if err := p.ScanLeaves(ctx, 0, n, 0, func(_ uint64, leaf []byte) error {
		out = append(out, string(leaf))
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// lastEvent returns the newest audit event whose JSON holds every one of
// parts, or "" if none does.
func (e *env) lastEvent(parts ...string) string {
	evs := e.audited()
	for i := len(evs) - 1; i >= 0; i-- {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(evs[i], p)
		}
		if ok {
			return evs[i]
		}
	}
	return ""
}

// roles returns the current roles of id.
func (e *env) roles(id string) []string {
	e.t.Helper()
	a, err := e.dir.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Roles
}
