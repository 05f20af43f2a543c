package account

import (
	"errors"
	"strings"
	"testing"
)

// TestChanged: a node told that another changed an account's record
// (Changed with its key) refuses the old epoch at once, without waiting
// for Refresh; another account's key, or one of another prefix, leaves
// its cache alone; "" drops everything.
func TestChanged(t *testing.T) {
	e := newEnv(t)
	a, b := e.open(t), e.open(t) // the clock never moves: only Changed can refresh b
	mustCreate(t, a, "alice", "nurse")
	mustCreate(t, a, "bob", "nurse")
	for _, id := range []string{"alice", "bob"} {
		if _, err := b.Valid(ctx, id, 1); err != nil {
			t.Fatal(err)
		}
	}
	key := a.accountKey("alice")
	if !strings.HasPrefix(key, ChangePrefix) {
		t.Fatalf("account key %q is not under ChangePrefix %q", key, ChangePrefix)
	}
	if err := a.Disable(ctx, "alice", "admin1", "stolen laptop"); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, "bob", "admin1"); err != nil {
		t.Fatal(err)
	}
	b.Changed(a.accountKey("carol"))
	b.Changed("mfa/" + strings.TrimPrefix(key, ChangePrefix))
	if _, err := b.Valid(ctx, "alice", 1); err != nil {
		t.Fatalf("alice on node b after unrelated changes: %v, want the cached account (nil)", err)
	}
	b.Changed(key)
	if _, err := b.Valid(ctx, "alice", 1); !errors.Is(err, ErrDisabled) {
		t.Fatalf("alice on node b after Changed: %v, want ErrDisabled", err)
	}
	if _, err := b.Valid(ctx, "bob", 1); err != nil {
		t.Fatalf("bob on node b before his change is announced: %v, want the cached account", err)
	}
	b.Changed("")
	if _, err := b.Valid(ctx, "bob", 1); !errors.Is(err, ErrRevoked) {
		t.Fatalf("bob on node b after Changed(\"\"): %v, want ErrRevoked", err)
	}
}
