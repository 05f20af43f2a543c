package web

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestBreakGlass(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("alice")
	if b.get("/breakglass"); !strings.Contains(b.body, `id="breakglass"`) {
		t.Fatalf("break-glass page:\n%s", b.body)
	}
	const reason = "unconscious patient in the emergency department"
	form := func(mod func(url.Values)) url.Values {
		v := url.Values{"category": {"emergency-treatment"}, "reason": {reason}, "password": {"pwalice"}, "code": {e.code(t, aliceSecret, 1)}}
		mod(v)
		return v
	}
	for _, tt := range []struct {
		name   string
		form   url.Values
		status int
	}{
		{"no category", form(func(v url.Values) { v.Set("category", "curiosity") }), 400},
		{"short reason", form(func(v url.Values) { v.Set("reason", " too short ") }), 400},
		{"no password", form(func(v url.Values) { v.Del("password") }), 400},
		{"wrong password", form(func(v url.Values) { v.Set("password", "nope") }), 401},
		{"no second factor", form(func(v url.Values) { v.Del("code") }), 401},
		{"wrong code", form(func(v url.Values) { v.Set("code", "000000") }), 401},
	} {
		b.get("/breakglass")
		if st := b.post("/breakglass", tt.form); st != tt.status {
			t.Errorf("%s = %d, want %d", tt.name, st, tt.status)
		}
	}
	if ev := e.log.find("break-glass"); len(ev) != 3 || ev[0].BreakGlass || ev[0].Outcome != "4" {
		t.Fatalf("refused attempts audited as %+v, want 3 failures", ev)
	}
	e.clk.Add(10 * time.Minute) // sign-in is no longer a recent step-up
	b.get("/breakglass")
	b.post("/breakglass", form(func(url.Values) {}))
	if b.path != "/console/" || !strings.Contains(b.body, "open (emergency-treatment)") {
		t.Fatalf("after break-glass at %s:\n%s", b.path, b.body)
	}
	ev := e.log.find("break-glass")
	last := ev[len(ev)-1]
	if !last.BreakGlass || last.Outcome != "0" || last.UserID != "alice" || strings.Contains(last.OutcomeDesc+last.Query, "unconscious") {
		t.Fatalf("break-glass event = %+v", last)
	}
	p, ok := e.m.Principal(reqWithJar(t, b))
	if !ok || p.BreakGlass == nil || !p.BreakGlass.Until.Equal(e.clk.Now().Add(time.Hour)) || !e.m.StepUp(reqWithJar(t, b)) {
		t.Fatalf("principal after break-glass = %+v", p)
	}
	for range 5 { // stay active; the window closes at 60 minutes
		e.clk.Add(12 * time.Minute)
		b.get("/console/")
	}
	if b.path != "/console/" || !strings.Contains(b.body, `id="breakglass">closed<`) {
		t.Fatalf("break-glass after 60 min:\n%s", b.body)
	}
}

func TestBreakGlassGuessingEndsSession(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("alice")
	for i := range 5 {
		b.get("/breakglass")
		if b.path != "/breakglass" {
			t.Fatalf("attempt %d: signed out early (at %s)", i+1, b.path)
		}
		b.post("/breakglass", url.Values{"category": {"other"}, "reason": {"a long enough reason"}, "password": {"pwalice"}, "code": {"000000"}})
	}
	if !strings.Contains(b.body, "signed out") {
		t.Fatalf("after 5 wrong codes:\n%s", b.body)
	}
	if b.get("/console/"); b.path != "/login" {
		t.Error("the session survived 5 wrong step-up codes")
	}
}
