package account

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// testArgon keeps tests fast; TestHashFormat checks the real defaults.
var testArgon = argonParams{Memory: 64, Time: 1, Threads: 1}

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

type env struct {
	dir    string
	st     *sqlite.Backend
	b      *barrier.Barrier
	log    *audit.Log
	clk    *clock
	hashes atomic.Int64
}

func newEnv(t testing.TB) *env {
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
	st, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(context.Background(), kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, st: st, b: b, log: audit.NewLog(st, 5*time.Second),
		clk: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}}
}

// open returns a Directory over the env's store (a "node"), using the
// env's clock and cheap hashing, with opts adjusted by fns.
func (e *env) open(t testing.TB, fns ...func(*Options)) *Directory {
	t.Helper()
	o := DefaultOptions(e.log)
	o.Now = e.clk.Now
	o.argon = testArgon
	for _, f := range fns {
		f(&o)
	}
	d, err := Open(context.Background(), e.st, e.b, o)
	if err != nil {
		t.Fatal(err)
	}
	d.onHash = func(argonParams) { e.hashes.Add(1) }
	return d
}

// auditCount counts the audit events whose JSON contains every one of subs.
func (e *env) auditCount(t testing.TB, subs ...string) int {
	t.Helper()
	n := 0
	err := e.st.View(context.Background(), func(r store.Reader) error {
		size, err := r.AuditSize()
		if err != nil {
			return err
		}
		leaves, err := r.AuditLeaves(0, size)
		if err != nil {
			return err
		}
	next:
		for _, l := range leaves {
			for _, s := range subs {
				if !contains(l, s) {
					continue next
				}
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

const goodPW = Password("violet-otter-trombone-42")

func mustCreate(t testing.TB, d *Directory, id string, roles ...string) {
	t.Helper()
	if err := d.Create(context.Background(), Account{ID: id, Name: "Name of " + id, Roles: roles}, goodPW, "admin1"); err != nil {
		t.Fatal(err)
	}
}
