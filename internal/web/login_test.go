package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPasswordThenTOTP(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	if st := b.get("/login"); st != 200 || !strings.Contains(b.body, `id="login"`) {
		t.Fatalf("GET /login = %d", st)
	}
	b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}})
	if b.path != "/login/totp" || !strings.Contains(b.body, `name="code"`) {
		t.Fatalf("after password: %s", b.path)
	}
	if st := b.get("/console/"); b.path != "/login/totp" {
		t.Fatalf("console before second factor = %d at %s", st, b.path)
	}
	b.post("/login/totp", url.Values{"code": {e.code(t, aliceSecret, 0)}})
	if b.path != "/console/" || !strings.Contains(b.body, `id="mfa">proved<`) {
		t.Fatalf("after TOTP landed on %s:\n%s", b.path, b.body)
	}
	ev := e.log.find("login")
	if len(ev) != 1 || ev[0].UserID != "alice" || ev[0].AuthMethod != "password+totp" {
		t.Errorf("login events = %+v", ev)
	}
	if e.dir.mfa["alice"].TOTPLastStep != e.clk.Now().Unix()/30 {
		t.Error("the used time step was not recorded")
	}
}

func TestWrongAndReusedTOTP(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		code   func() string
		status int
		at     string
	}{
		{"wrong", func() string { return "000000" }, 401, "/login/totp"},
		{"two steps ahead", func() string { return e.code(t, aliceSecret, 2) }, 401, "/login/totp"},
		{"garbage", func() string { return "12ab<>" }, 401, "/login/totp"},
		{"right", func() string { return e.code(t, aliceSecret, 0) }, 200, "/console/"},
		{"same code again", func() string { return e.code(t, aliceSecret, 0) }, 401, "/login/totp"},
		{"previous step", func() string { return e.code(t, aliceSecret, -1) }, 401, "/login/totp"},
		{"next step", func() string { return e.code(t, aliceSecret, 1) }, 200, "/console/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser(t)
			b.get("/login")
			b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}})
			st := b.post("/login/totp", url.Values{"code": {tt.code()}})
			if st != tt.status || b.path != tt.at {
				t.Fatalf("status %d at %s, want %d at %s", st, b.path, tt.status, tt.at)
			}
			if st == 401 && !strings.Contains(b.body, msgWrongCode) {
				t.Errorf("no wrong-code message")
			}
		})
	}
	if n := len(e.log.find("login-failed")); n != 5 {
		t.Errorf("%d refused codes audited, want 5", n)
	}
}

func TestTooManyWrongCodesRestartsLogin(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.get("/login")
	b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}})
	for range 5 {
		b.post("/login/totp", url.Values{"code": {"000000"}})
	}
	if !strings.Contains(b.body, msgExpired) {
		t.Fatalf("after 5 wrong codes: %s", b.body)
	}
	if st := b.post("/login/totp", url.Values{"code": {e.code(t, aliceSecret, 0)}}); st != 401 {
		t.Fatalf("a right code after the pending login was dropped = %d", st)
	}
}

func TestRecoveryCodeWorksOnce(t *testing.T) {
	e := newEnv(t)
	for i, want := range []string{"/console/", "/login/totp"} {
		b := e.browser(t)
		b.get("/login")
		b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}})
		b.post("/login/totp", url.Values{"code": {" ABCDE-fghij "}})
		if b.path != want {
			t.Fatalf("use %d of the recovery code landed on %s, want %s", i+1, b.path, want)
		}
	}
	if n := len(e.dir.mfa["alice"].Recovery); n != 0 {
		t.Errorf("%d recovery codes left, want 0", n)
	}
	if ev := e.log.find("login"); len(ev) != 1 || ev[0].AuthMethod != "password+recovery" {
		t.Errorf("login events = %+v", ev)
	}
}

func TestPasswordFailures(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	for _, tt := range []struct {
		user, pw string
		status   int
		msg      string
	}{
		{"alice", "wrong", 401, msgBadLogin},
		{"nobody", "pwnobody", 401, msgBadLogin},
		{"", "x", 400, "Give a user id"},
	} {
		b.get("/login")
		if st := b.post("/login", url.Values{"user": {tt.user}, "password": {tt.pw}}); st != tt.status || !strings.Contains(b.body, tt.msg) {
			t.Errorf("%s/%s = %d, want %d with %q", tt.user, tt.pw, st, tt.status, tt.msg)
		}
	}
	e.dir.throttled = true
	b.get("/login")
	if st := b.post("/login", url.Values{"user": {"alice"}, "password": {"pwalice"}}); st != 429 || !strings.Contains(b.body, "Too many attempts") {
		t.Errorf("throttled = %d", st)
	}
	if len(e.log.find("login")) != 0 {
		t.Error("a refused password produced a session")
	}
}

func TestMFARequiredRoleWithoutFactor(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("nora")
	if b.path != "/account/totp" {
		t.Fatalf("nurse without MFA landed on %s", b.path)
	}
	secret := regexpFind(t, b.body, `id="secret">([A-Z2-7]+)<`)
	if !strings.Contains(b.body, "otpauth://totp/phivault:nora?") {
		t.Errorf("no otpauth URI:\n%s", b.body)
	}
	b.get("/console/")
	if !strings.Contains(b.body, `id="mfa">not proved<`) || !strings.Contains(b.body, `id="need-mfa"`) {
		t.Fatalf("console before enrolment:\n%s", b.body)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/console/", nil)
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	if p, ok := e.m.Principal(req); !ok || p.MFA {
		t.Fatalf("principal before enrolment = %+v, %v; want MFA false", p, ok)
	}
	raw, _ := b32.DecodeString(secret)
	b.get("/account/totp")
	secret = regexpFind(t, b.body, `id="secret">([A-Z2-7]+)<`)
	raw, _ = b32.DecodeString(secret)
	if st := b.post("/account/totp", url.Values{"secret": {secret}, "code": {"000000"}}); st != 400 {
		t.Fatalf("enrolment with a wrong code = %d", st)
	}
	if len(e.dir.mfa["nora"].TOTPSecret) != 0 {
		t.Fatal("a wrong code enrolled the secret")
	}
	b.post("/account/totp", url.Values{"secret": {secret}, "code": {e.code(t, raw, 0)}})
	codes := strings.Count(b.body, "<li>")
	if codes != 10 {
		t.Fatalf("%d recovery codes shown, want 10:\n%s", codes, b.body)
	}
	m := e.dir.mfa["nora"]
	if d := cmp.Diff(raw, []byte(m.TOTPSecret)); d != "" || len(m.Recovery) != 10 {
		t.Fatalf("stored MFA: secret diff %s, %d recovery hashes", d, len(m.Recovery))
	}
	b.get("/console/")
	if !strings.Contains(b.body, `id="mfa">proved<`) {
		t.Fatalf("console after enrolment:\n%s", b.body)
	}
	if ev := e.log.find("mfa-enrol"); len(ev) != 1 || ev[0].UserID != "nora" {
		t.Errorf("enrolment events = %+v", ev)
	}
	b.get("/account/totp")
	if !strings.Contains(b.body, `id="enrolled"`) || strings.Contains(b.body, `id="secret"`) {
		t.Error("the enrolment page offers a new key to an enrolled user")
	}
	if st := b.post("/account/totp", url.Values{"secret": {secret}, "code": {e.code(t, raw, 1)}}); st != 409 {
		t.Errorf("second enrolment = %d, want 409", st)
	}
	// A role that reaches no patient data lands on the console directly.
	a := e.browser(t)
	a.signIn("aud")
	if a.path != "/console/" || strings.Contains(a.body, `id="need-mfa"`) {
		t.Errorf("auditor landed on %s", a.path)
	}
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("alice")
	b.post("/logout", url.Values{})
	if b.path != "/login" {
		t.Fatalf("after sign-out at %s", b.path)
	}
	if b.get("/console/"); b.path != "/login" {
		t.Error("console still reachable after sign-out")
	}
	if ev := e.log.find("logout"); len(ev) != 1 || ev[0].OutcomeDesc != "signed out" {
		t.Errorf("logout events = %+v", ev)
	}
}

func TestCSRFRefusedChangesNothing(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("alice")
	for _, tt := range []struct {
		path string
		form url.Values
	}{
		{"/logout", url.Values{"csrf": {""}}},
		{"/logout", url.Values{"csrf": {"forged"}}},
		{"/breakglass", url.Values{"csrf": {""}, "category": {"other"}, "reason": {"long enough reason"}, "password": {"pwalice"}, "code": {e.code(t, aliceSecret, 1)}}},
		{"/account/totp", url.Values{"csrf": {"x"}, "secret": {"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}, "code": {"123456"}}},
		{"/login", url.Values{"csrf": {"x"}, "user": {"aud"}, "password": {"pwaud"}}},
	} {
		before := e.dir.logins
		if st := b.post(tt.path, tt.form); st != 403 {
			t.Errorf("POST %s with csrf %q = %d, want 403", tt.path, tt.form.Get("csrf"), st)
		}
		if e.dir.logins != before {
			t.Errorf("POST %s checked a password despite a bad token", tt.path)
		}
	}
	b.get("/console/")
	if b.path != "/console/" || !strings.Contains(b.body, `id="user">alice<`) {
		t.Fatal("refused requests ended or changed the session")
	}
	if len(e.log.find("logout"))+len(e.log.find("break-glass")) != 0 {
		t.Error("a refused request was acted on")
	}
	// A cross-site browser request is refused even with the right token.
	tok := regexpFind(t, b.body, `name="csrf" value="([^"]+)"`)
	req, _ := http.NewRequest("POST", e.srv.URL+"/logout", strings.NewReader(url.Values{"csrf": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if st := b.do(req); st != 403 {
		t.Errorf("cross-site sign-out = %d, want 403", st)
	}
}

func TestCookieAndHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.get("/login")
	tok := regexpFind(t, b.body, `name="csrf" value="([^"]+)"`)
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(url.Values{"csrf": {tok}, "user": {"aud"}, "password": {"pwaud"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var set string
	for _, s := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(s, "__Host-phivault_session=") {
			set = s
		}
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "Domain=") || strings.Contains(set, "Expires=") {
		t.Errorf("session cookie %q is not a host-only session cookie", set)
	}
	r2, _ := e.srv.Client().Get(e.srv.URL + "/login")
	r2.Body.Close()
	if got := r2.Header.Get("Content-Security-Policy"); got != CSP || !strings.Contains(got, "script-src 'self'") {
		t.Errorf("CSP = %q", got)
	}
	if r2.Header.Get("Cache-Control") != "no-store" {
		t.Error("pages may be cached")
	}
	r3, _ := e.srv.Client().Get(e.srv.URL + "/static/console.css")
	r3.Body.Close()
	if r3.StatusCode != 200 || !strings.HasPrefix(r3.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style sheet = %d %s", r3.StatusCode, r3.Header.Get("Content-Type"))
	}
}

func TestTimeoutsAndDisabling(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("aud")
	e.clk.Add(14 * time.Minute)
	if b.get("/console/"); b.path != "/console/" {
		t.Fatal("signed out before the idle timeout")
	}
	e.clk.Add(15 * time.Minute)
	if b.get("/console/"); b.path != "/login" {
		t.Fatal("still signed in after 15 idle minutes")
	}
	if ev := e.log.find("logout"); len(ev) != 1 || ev[0].OutcomeDesc != "automatic logoff: idle" {
		t.Errorf("logout events = %+v", ev)
	}
	b.signIn("aud")
	e.dir.mu.Lock()
	a := e.dir.accts["aud"]
	a.Disabled = true
	e.dir.accts["aud"] = a
	e.dir.mu.Unlock()
	if b.get("/console/"); b.path != "/login" {
		t.Error("a disabled user's session survived")
	}
}

func regexpFind(t *testing.T, s, re string) string {
	t.Helper()
	m := regexpMust(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", re, s)
	}
	return m[1]
}

func TestSignOutAfterIdleExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn("aud")
	e.clk.Add(16 * time.Minute)
	if st := b.post("/logout", url.Values{}); st != 200 || b.path != "/login" {
		t.Fatalf("sign-out of an expired session = %d at %s", st, b.path)
	}
	if ev := e.log.find("logout"); len(ev) != 1 || ev[0].OutcomeDesc != "automatic logoff: idle" {
		t.Errorf("logout events = %+v, want only the automatic logoff", ev)
	}
}
