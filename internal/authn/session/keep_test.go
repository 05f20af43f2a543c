package session

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// nodes are Managers sharing one StoreKeeper over a temporary SQLite store,
// one directory, one audit log and one clock: several phivault nodes.
type nodes struct {
	*fixture
	keep *StoreKeeper
	st   *sqlite.Backend
	dir  string
}

func newNodes(t *testing.T) *nodes {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	kp := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(ctx, kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := NewStoreKeeper(ctx, st, b)
	if err != nil {
		t.Fatal(err)
	}
	return &nodes{fixture: newFixture(t, Options{Keep: keep}), keep: keep, st: st, dir: dir}
}

// node returns another Manager over the same store (another node, or this
// one after a restart).
func (n *nodes) node(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{Accounts: n.accts, Audit: n.log, Now: n.clk.Now, Keep: n.keep})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKeptSessionsAcrossNodes(t *testing.T) {
	n := newNodes(t)
	a, b := n.m, n.node(t)
	br := n.signIn(t, "alice", true)
	pa, okA := a.Principal(br.req("GET"))
	pb, okB := b.Principal(br.req("GET"))
	if !okA || !okB || pa.SessionID != pb.SessionID || !pb.MFA {
		t.Fatalf("node B does not know node A's session: %+v %v / %+v %v", pa, okA, pb, okB)
	}
	if ta, tb := a.Token(httptest.NewRecorder(), br.req("GET")), b.Token(httptest.NewRecorder(), br.req("GET")); ta != tb {
		t.Error("the CSRF token differs between nodes")
	}
	// Break the glass on A; B sees the window once its copy is refreshed.
	if err := a.Reauthenticated(br.req("POST"), "password+totp"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenBreakGlass(br.req("POST"), "emergency-treatment", "a reason long enough"); err != nil {
		t.Fatal(err)
	}
	n.clk.Add(2 * time.Second)
	if p, _ := b.Principal(br.req("GET")); p.BreakGlass == nil {
		t.Error("node B does not see the break-the-glass window opened on A")
	}
	// A restart (a new Manager) still knows the session.
	if _, ok := n.node(t).Principal(br.req("GET")); !ok {
		t.Error("the session did not survive a restart")
	}
	// Sign out on B: A refuses once its copy is refreshed.
	b.End(httptest.NewRecorder(), br.req("POST"), "signed out")
	n.clk.Add(2 * time.Second)
	if _, ok := a.Principal(br.req("GET")); ok {
		t.Error("node A still accepts a session signed out on B")
	}
	if ev := n.log.find("logout"); len(ev) != 1 {
		t.Errorf("%d logouts audited, want 1", len(ev))
	}
}

func TestKeptPendingLoginCompletesOnAnotherNode(t *testing.T) {
	n := newNodes(t)
	b := n.node(t)
	br := newBrowser()
	w := httptest.NewRecorder()
	if err := n.m.Begin(w, br.req("POST"), "alice"); err != nil {
		t.Fatal(err)
	}
	br.keep(w)
	if u, ok := b.Pending(br.req("GET")); !ok || u != "alice" {
		t.Fatalf("node B: Pending = %q, %v", u, ok)
	}
	w = httptest.NewRecorder()
	if err := b.Complete(w, br.req("POST"), "alice", "totp"); err != nil {
		t.Fatal(err)
	}
	br.keep(w)
	n.clk.Add(2 * time.Second)
	if p, ok := n.m.Principal(br.req("GET")); !ok || p.Method != "password+totp" {
		t.Errorf("node A after completion on B: %+v, %v", p, ok)
	}
}

func TestKeptIdleExpiryAuditedOnce(t *testing.T) {
	n := newNodes(t)
	a, b := n.m, n.node(t)
	br := n.signIn(t, "alice", true)
	b.Principal(br.req("GET")) // B holds a copy too
	// Active on A only, every 5 minutes for 40 minutes: B's sweeps must
	// not end the session although B's own copy looks idle.
	for range 8 {
		n.clk.Add(5 * time.Minute)
		if _, ok := a.Principal(br.req("GET")); !ok {
			t.Fatalf("session ended while active on A at %v", n.clk.Now())
		}
		if got := b.Sweep(context.Background()); got != 0 {
			t.Fatalf("node B's sweep ended %d active sessions", got)
		}
	}
	n.clk.Add(15 * time.Minute)
	ended := a.Sweep(context.Background()) + b.Sweep(context.Background()) + n.node(t).Sweep(context.Background())
	if ended != 1 {
		t.Errorf("sweeps ended %d sessions, want 1", ended)
	}
	if ev := n.log.find("logout"); len(ev) != 1 || ev[0].OutcomeDesc != LogoffIdle {
		t.Errorf("logout events = %+v, want one idle logoff", ev)
	}
	if _, ok := b.Principal(br.req("GET")); ok {
		t.Error("the expired session still works on B")
	}
}

func TestKeptSessionsAreOpaque(t *testing.T) {
	n := newNodes(t)
	br := n.signIn(t, "alice", true)
	raw := []byte(br.cookies[CookieName].Value)
	var kvs []store.KV
	if err := n.st.View(context.Background(), func(r store.Reader) error {
		var err error
		kvs, err = r.MetaPrefix(keepPrefix)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 1 {
		t.Fatalf("%d kept sessions, want 1", len(kvs))
	}
	n.st.Close()
	for _, kv := range kvs {
		for _, secret := range [][]byte{[]byte("alice"), []byte("physician"), raw} {
			if bytes.Contains(kv.Value, secret) || strings.Contains(kv.Key, string(secret)) {
				t.Errorf("the store sees %q", secret)
			}
		}
	}
	err := filepath.Walk(n.dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("alice")) || bytes.Contains(b, raw) {
			t.Errorf("%s holds a user id or cookie in plaintext", filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// brokenKeeper fails every call, like a store that is down.
type brokenKeeper struct{}

func (brokenKeeper) Load(context.Context, string) ([]byte, error) { return nil, errBroken }
func (brokenKeeper) Update(context.Context, string, func([]byte) ([]byte, error)) error {
	return errBroken
}
func (brokenKeeper) List(context.Context) (map[string][]byte, error) { return nil, errBroken }

var errBroken = errors.New("store unavailable")

func TestKeeperDownRefusesSignIn(t *testing.T) {
	f := newFixture(t, Options{Keep: brokenKeeper{}})
	w := httptest.NewRecorder()
	if err := f.m.Start(w, httptest.NewRequest("POST", "/", nil), "alice", "password", false); !errors.Is(err, errBroken) {
		t.Fatalf("Start = %v, want the store's error", err)
	}
	f.m.mu.Lock()
	n := len(f.m.recs)
	f.m.mu.Unlock()
	if len(w.Result().Cookies()) != 0 || n != 0 {
		t.Error("a session that could not be kept was handed out")
	}
}
