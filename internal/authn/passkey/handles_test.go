package passkey

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
)

func TestHandleIndex(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	k := newSoftKey(t, origin)
	r.register("alice", k)
	now := r.now
	x := NewHandleIndex(r.dir, time.Minute)
	x.now = func() time.Time { return now }

	if id, err := x.UserByHandle(ctx, k.handle); id != "alice" || err != nil {
		t.Fatalf("UserByHandle(alice's handle) = %q, %v; want alice", id, err)
	}
	lists := r.dir.lists
	// Random handles within MinRescan do not read the directory again.
	for i := range 100 {
		if _, err := x.UserByHandle(ctx, []byte{byte(i)}); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("unknown handle: %v, want ErrNotFound", err)
		}
	}
	if r.dir.lists != lists {
		t.Errorf("100 unknown handles listed the directory %d more times, want none", r.dir.lists-lists)
	}
	// A passkey registered on another node is found after MinRescan.
	bobKey := newSoftKey(t, origin)
	r.register("bob", bobKey)
	if _, err := x.UserByHandle(ctx, bobKey.handle); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("within MinRescan: %v, want ErrNotFound", err)
	}
	now = now.Add(time.Minute)
	if id, err := x.UserByHandle(ctx, bobKey.handle); id != "bob" || err != nil {
		t.Errorf("after MinRescan: %q, %v; want bob", id, err)
	}
	// Handles the Service makes are known at once.
	x.Remember([]byte("new-handle"), "carol")
	if id, _ := x.UserByHandle(ctx, []byte("new-handle")); id != "carol" {
		t.Errorf("remembered handle gives %q, want carol", id)
	}
}

// The Service tells a HandleIndex of the handles it makes, so a passkey
// registered on this node signs in at once.
func TestServiceRemembersHandles(t *testing.T) {
	r := newRig(t)
	x := NewHandleIndex(r.dir, time.Hour)
	x.scanned = r.now // as if it had just read the directory
	x.now = func() time.Time { return r.now }
	r.svc.c.Handles = x
	k := newSoftKey(t, origin)
	r.register("alice", k)
	opts, cookie := r.begin("/passkey/login/begin", nil)
	if code, body, _ := r.do(call{path: "/passkey/login/finish", body: string(k.get(opts)), cookie: cookie}); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	if r.dir.lists != 0 {
		t.Errorf("listed the directory %d times", r.dir.lists)
	}
}

// The real directory and session manager fit the interfaces.
var (
	_ Directory = (*account.Directory)(nil)
	_ Accounts  = (*account.Directory)(nil)
	_ Sessions  = (*session.Manager)(nil)
	_ failer    = (*session.Manager)(nil)
)
