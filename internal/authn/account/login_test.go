package account

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Acceptance 5: 1,000 wrong passwords against one account (from changing
// addresses, so the per-source limit does not hide the per-account one).
func TestLockoutOneAccount(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "nurse")
	var throttled, bad int
	for i := range 1000 {
		_, err := d.Login(ctx, "alice", Password("wrong-guess-number-"+string(rune('a'+i%26))), "192.0.2."+itoa(i%250))
		switch {
		case errors.Is(err, ErrThrottled):
			throttled++
		case errors.Is(err, ErrBadCredentials):
			bad++
		default:
			t.Fatalf("attempt %d: %v", i, err)
		}
		e.clk.Add(500 * time.Millisecond)
	}
	// 500 s: 10 failures lock for 15 min, so only the first ten (and
	// none after) are checked.
	if bad != 10 || throttled != 990 {
		t.Errorf("%d refused as wrong, %d throttled; want 10 and 990", bad, throttled)
	}
	if got := e.hashes.Load(); got != 10+1 { // +1: creating alice
		t.Errorf("%d Argon2id computations, want 11: throttled attempts must not cost a hash", got)
	}
	if got := e.auditCount(t, `"code":"login-failed"`); got != 1000 {
		t.Errorf("%d login-failed audit events, want 1000", got)
	}
	if got := e.auditCount(t, `"code":"login-failed"`, `"value":"alice"`, "throttled"); got != 990 {
		t.Errorf("%d throttled attempts audited against alice, want 990", got)
	}
	if got := e.auditCount(t, `"code":"lockout"`, "alice"); got != 1 {
		t.Errorf("%d lockout audit events, want 1", got)
	}
	a, _ := d.Get(ctx, "alice")
	if !a.LockedUntil.After(e.clk.Now()) {
		t.Fatalf("the lock is not stored: LockedUntil %v", a.LockedUntil)
	}
	// The correct password does not log in now, nor after a restart (a
	// fresh Directory with no memory of the failures), nor on another node.
	if _, err := d.Login(ctx, "alice", goodPW, "198.51.100.7"); err == nil {
		t.Fatal("correct password logged in to a locked account")
	}
	restarted := e.open(t)
	if _, err := restarted.Login(ctx, "alice", goodPW, "198.51.100.7"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("after restart, correct password for a locked account: %v, want ErrBadCredentials", err)
	}
	// An administrator unlocks it.
	if err := restarted.Unlock(ctx, "alice", "admin1"); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Login(ctx, "alice", goodPW, "198.51.100.7"); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
}

// The lock ends by itself after LockFor.
func TestLockoutExpires(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "nurse")
	for i := range 10 {
		d.Login(ctx, "alice", "wrong-password-guess", "192.0.2."+itoa(i))
		e.clk.Add(time.Minute) // past each delay
	}
	if _, err := d.Login(ctx, "alice", goodPW, "198.51.100.7"); err == nil {
		t.Fatal("locked account logged in")
	}
	e.clk.Add(16 * time.Minute)
	if _, err := e.open(t).Login(ctx, "alice", goodPW, "198.51.100.7"); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
}

// Acceptance 5: 1,000 accounts from one source.
func TestThrottleOneSource(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "victim", "nurse")
	var throttled int
	for i := range 1000 {
		id := "user" + itoa(i)
		if i == 500 {
			id = "victim"
		}
		_, err := d.Login(ctx, id, goodPW+"x", "203.0.113.66")
		if errors.Is(err, ErrThrottled) {
			throttled++
		} else if !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
		e.clk.Add(100 * time.Millisecond)
	}
	if throttled != 1000-21 {
		t.Errorf("%d throttled, want %d (the source is blocked after 20 failures)", throttled, 1000-21)
	}
	if got := e.auditCount(t, `"code":"login-failed"`, "203.0.113.66"); got != 1000 {
		t.Errorf("%d login-failed events from the source, want 1000", got)
	}
	if got := e.auditCount(t, `"code":"lockout"`, "source blocked", "203.0.113.66"); got != 1 {
		t.Errorf("%d source-block events, want 1", got)
	}
	// The right password from the blocked source does not log in; from
	// elsewhere it does (the block is not a denial of service for all).
	if _, err := d.Login(ctx, "victim", goodPW, "203.0.113.66"); !errors.Is(err, ErrThrottled) {
		t.Errorf("blocked source, right password: %v, want ErrThrottled", err)
	}
	if _, err := d.Login(ctx, "victim", goodPW, "198.51.100.7"); err != nil {
		t.Errorf("other source: %v", err)
	}
	e.clk.Add(16 * time.Minute)
	if _, err := d.Login(ctx, "victim", goodPW, "203.0.113.66"); err != nil {
		t.Errorf("after the block expired: %v", err)
	}
}

// Timing: an unknown user costs exactly the Argon2id computation a known
// one does (same count, same parameters), so response time does not tell.
func TestUnknownUserSameWork(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "nurse")
	var calls []argonParams
	d.onHash = func(p argonParams) { calls = append(calls, p) }
	_, errKnown := d.Login(ctx, "alice", "wrong-password-guess", "192.0.2.1")
	known := calls
	calls = nil
	_, errUnknown := d.Login(ctx, "mallory", "wrong-password-guess", "192.0.2.2")
	if !errors.Is(errKnown, ErrBadCredentials) || !errors.Is(errUnknown, ErrBadCredentials) {
		t.Fatalf("errors %v / %v, want ErrBadCredentials for both", errKnown, errUnknown)
	}
	if diff := cmp.Diff(known, calls); diff != "" || len(calls) != 1 {
		t.Errorf("hash work differs between known and unknown users (-known +unknown):\n%s", diff)
	}
	if errKnown.Error() != errUnknown.Error() {
		t.Errorf("messages differ: %q vs %q", errKnown, errUnknown)
	}
	// Disabled: same error, same work.
	if err := d.Disable(ctx, "alice", "admin1", "left"); err != nil {
		t.Fatal(err)
	}
	calls = nil
	if _, err := d.Login(ctx, "alice", goodPW, "192.0.2.3"); !errors.Is(err, ErrBadCredentials) || len(calls) != 1 {
		t.Errorf("disabled account with right password: %v after %d hashes", err, len(calls))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Parallel guesses cannot overtake the count: however many arrive at
// once, no more passwords are checked than the sequential limits allow.
func TestParallelGuesses(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "alice", "nurse")
	e.hashes.Store(0)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() { d.Login(ctx, "alice", "wrong-password-guess", "192.0.2."+itoa(i)) })
	}
	wg.Wait()
	if got := e.hashes.Load(); got > 5 {
		t.Errorf("%d passwords checked in one burst, want at most 5 (the delay threshold)", got)
	}
	e.hashes.Store(0)
	for i := range 200 {
		wg.Go(func() { d.Login(ctx, "user"+itoa(i), "wrong-password-guess", "203.0.113.5") })
	}
	wg.Wait()
	if got := e.hashes.Load(); got > 21 {
		t.Errorf("%d passwords checked from one source in one burst, want at most 21", got)
	}
}

// Ids that cannot exist share one throttle key and cost the same hash.
func TestLoginOddIDs(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	e.hashes.Store(0)
	for _, id := range []string{"", strings.Repeat("x", 1<<20), "bad id", "\x00"} {
		if _, err := d.Login(ctx, id, goodPW, "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Login(%.10q) = %v", id, err)
		}
	}
	if got := e.hashes.Load(); got != 4 {
		t.Errorf("%d hashes for 4 attempts", got)
	}
	if n := len(d.thr.users); n != 1 {
		t.Errorf("%d throttle entries for invalid ids, want 1", n)
	}
}

// A hash made under weaker parameters is upgraded at the next login.
func TestHashUpgradedAtLogin(t *testing.T) {
	e := newEnv(t)
	mustCreate(t, e.open(t), "alice", "nurse") // testArgon
	stronger := argonParams{Memory: 128, Time: 2, Threads: 1}
	d := e.open(t, func(o *Options) { o.argon = stronger })
	if _, err := d.Login(ctx, "alice", goodPW, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	var rec record
	if _, err := d.load(ctx, d.accountKey("alice"), &rec); err != nil {
		t.Fatal(err)
	}
	if p, _, _, _ := parsePHC(rec.Hash); p != stronger {
		t.Fatalf("hash parameters after login %+v, want %+v", p, stronger)
	}
	if _, err := d.Login(ctx, "alice", goodPW, "192.0.2.1"); err != nil {
		t.Fatalf("login with the upgraded hash: %v", err)
	}
}
