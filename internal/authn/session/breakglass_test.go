package session

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBreakGlass(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	const reason = "patient unconscious in ED, no relationship on record"
	f.clk.Add(6 * time.Minute)
	if f.m.StepUp(b.req("GET")) {
		t.Fatal("StepUp true 6 minutes after sign-in")
	}
	if _, err := f.m.OpenBreakGlass(b.req("POST"), "emergency-treatment", reason); !errors.Is(err, ErrStepUp) {
		t.Fatalf("OpenBreakGlass without step-up = %v, want ErrStepUp", err)
	}
	if len(f.log.find("break-glass")) != 0 {
		t.Fatal("a refused break-the-glass was recorded as opened")
	}
	if err := f.m.Reauthenticated(b.req("POST"), "password+totp"); err != nil {
		t.Fatal(err)
	}
	if !f.m.StepUp(b.req("GET")) || f.m.SteppedUpWith(b.req("GET"), "passkey") {
		t.Fatal("StepUp / SteppedUpWith wrong after a TOTP step-up")
	}
	opened := f.clk.Now()
	bg, err := f.m.OpenBreakGlass(b.req("POST"), "emergency-treatment", reason)
	if err != nil {
		t.Fatal(err)
	}
	if !bg.Until.Equal(opened.Add(time.Hour)) || bg.Reason != "emergency-treatment" {
		t.Errorf("window = %+v", bg)
	}
	ev := f.log.find("break-glass")
	if len(ev) != 1 || !ev[0].BreakGlass || ev[0].UserID != "alice" {
		t.Fatalf("break-glass events = %+v", ev)
	}
	if strings.Contains(ev[0].OutcomeDesc+ev[0].Query, "unconscious") || ev[0].Query != "break-glass-reason:"+f.m.o.ReasonHash(reason) || len(ev[0].Query) != len("break-glass-reason:")+32 {
		t.Errorf("free-text reason leaked or hash missing: %q / %q", ev[0].OutcomeDesc, ev[0].Query)
	}
	for _, tt := range []struct {
		at   time.Duration
		open bool
	}{{0, true}, {14 * time.Minute, true}, {28 * time.Minute, true}, {42 * time.Minute, true}, {56 * time.Minute, true}, {60 * time.Minute, false}} {
		f.clk.t = opened.Add(tt.at)
		p, ok := f.m.Principal(b.req("GET"))
		if !ok {
			t.Fatalf("session gone at +%v", tt.at)
		}
		if (p.BreakGlass != nil) != tt.open {
			t.Errorf("at +%v break-glass = %+v, want open=%v", tt.at, p.BreakGlass, tt.open)
		}
	}
}

func TestBreakGlassNotOpenedWithoutAudit(t *testing.T) {
	f := newFixture(t, Options{})
	b := f.signIn(t, "alice", true)
	f.log.fail = true
	if _, err := f.m.OpenBreakGlass(b.req("POST"), "emergency-treatment", "a reason that is long enough"); !errors.Is(err, ErrAudit) {
		t.Fatalf("OpenBreakGlass = %v, want ErrAudit", err)
	}
	f.log.fail = false
	if p, _ := f.m.Principal(b.req("GET")); p.BreakGlass != nil {
		t.Error("window open although its audit event failed")
	}
}

func TestFailStepUpEndsSession(t *testing.T) {
	f := newFixture(t, Options{MaxFailures: 3})
	b := f.signIn(t, "alice", true)
	for want := 2; want >= 0; want-- {
		if left := f.m.FailStepUp(b.req("POST")); left != want {
			t.Fatalf("FailStepUp left = %d, want %d", left, want)
		}
	}
	if _, ok := f.m.Principal(b.req("GET")); ok {
		t.Fatal("session survived too many failed step-ups")
	}
	if ev := f.log.find("logout"); len(ev) != 1 || !strings.Contains(ev[0].OutcomeDesc, "failed re-authentications") {
		t.Errorf("logout events = %+v", ev)
	}
}
