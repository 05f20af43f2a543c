package web

import (
	"context"
	"crypto/rand"
	"github.com/phivault/phivault/internal/browsertest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// realConsole serves the console through server.Handler (its security
// headers included) over a real account directory in a temporary SQLite
// store, with sessions kept sealed in it, and returns its URL and the
// directory.
func realConsole(t *testing.T) (string, *account.Directory) {
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
	log := audit.NewLog(st, 0)
	d, err := account.Open(ctx, st, b, account.DefaultOptions(log))
	if err != nil {
		t.Fatal(err)
	}
	keep, err := session.NewStoreKeeper(ctx, st, b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.New(session.Options{Accounts: d, Audit: log, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := Handler(Options{Sessions: m, Accounts: d, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	h := server.Handler(server.Config{FHIR: http.NotFoundHandler(), Routes: routes, Audit: log,
		Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()})
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, d
}

// TestChromiumPasswordAndTOTP signs in through the real pages in headless
// Chromium: password, then a TOTP code computed from the secret, landing
// on /console/ with the second factor proved and the style sheet applied
// under the page's CSP; then signs out.
func TestChromiumPasswordAndTOTP(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; run without -short")
	}
	browsertest.Need(t)
	url, d := realConsole(t)
	ctx := context.Background()
	const user, pw = "dr.grey", "seven silent harbours 42"
	if err := d.Create(ctx, account.Account{ID: user, Name: "Dr Grey", Roles: []string{"physician"}}, pw, "test"); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 20)
	rand.Read(secret)
	if err := d.UpdateMFA(ctx, user, func(m *account.MFA) error { m.TOTPSecret = secret; return nil }); err != nil {
		t.Fatal(err)
	}
	bctx := browsertest.Context(t, 60*time.Second)
	start := time.Now()
	err := chromedp.Do(bctx,
		chromedp.Navigate(url+"/login"),
		chromedp.WaitVisible("#user"),
		chromedp.SendKeys("#user", user),
		chromedp.SendKeys("#password", pw),
		chromedp.Click("#submit"),
		chromedp.WaitVisible("#code"),
	)
	if err != nil {
		t.Fatalf("password step: %v", err)
	}
	if loc, _ := chromedp.Run(bctx, chromedp.Location()); !strings.HasSuffix(loc, "/login/totp") {
		t.Fatalf("after the password at %s", loc)
	}
	code, err := totp.GenerateCode(b32.EncodeToString(secret), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.SendKeys("#code", code), chromedp.Click("#submit"), chromedp.WaitVisible("#signout")); err != nil {
		t.Fatalf("TOTP step: %v", err)
	}
	t.Logf("sign-in with password and TOTP in Chromium took %v", time.Since(start).Round(time.Millisecond))
	loc, _ := chromedp.Run(bctx, chromedp.Location())
	mfa, _ := chromedp.Run(bctx, chromedp.Text("#mfa"))
	who, _ := chromedp.Run(bctx, chromedp.Text("#user"))
	bg, err := chromedp.Run(bctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header")).backgroundColor`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/console/") || mfa != "proved" || who != user || bg != "rgb(18, 38, 58)" {
		t.Fatalf("landed at %s: user %q, mfa %q, header colour %q (style sheet applied?)", loc, who, mfa, bg)
	}
	if err := chromedp.Do(bctx, chromedp.Click("#signout"), chromedp.WaitVisible("#login")); err != nil {
		t.Fatalf("sign-out: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(url+"/console/"), chromedp.WaitVisible("#login")); err != nil {
		t.Fatalf("console after sign-out did not send to sign-in: %v", err)
	}
}

// TestChromiumEnrolmentAndRecovery: a nurse (a role that needs a second
// factor) with none set up is sent to enrolment after the password, sets
// up TOTP with a code computed from the key shown on the page, receives 10
// recovery codes and reaches the console with the second factor proved;
// the next sign-in asks for the second factor, and a recovery code works.
func TestChromiumEnrolmentAndRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; run without -short")
	}
	browsertest.Need(t)
	url, d := realConsole(t)
	const user, pw = "nurse.joy", "amber lantern quietly 93"
	if err := d.Create(context.Background(), account.Account{ID: user, Roles: []string{"nurse"}}, pw, "test"); err != nil {
		t.Fatal(err)
	}
	bctx := browsertest.Context(t, 60*time.Second)
	signIn := func(next string) {
		t.Helper()
		if err := chromedp.Do(bctx, chromedp.Navigate(url+"/login"), chromedp.WaitVisible("#user"),
			chromedp.SendKeys("#user", user), chromedp.SendKeys("#password", pw), chromedp.Click("#submit"),
			chromedp.WaitVisible(next)); err != nil {
			t.Fatalf("sign-in waiting for %s: %v", next, err)
		}
	}
	signIn("#secret")
	key, err := chromedp.Run(bctx, chromedp.Text("#secret"))
	if err != nil {
		t.Fatal(err)
	}
	// The QR code decodes as an image under the page's CSP.
	if qw, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelector("#qr").naturalWidth`)); err != nil || qw != 200 {
		t.Errorf("QR image natural width %d, %v; want 200 (blocked by the CSP?)", qw, err)
	}
	code, err := totp.GenerateCode(key, time.Now())
	if err != nil {
		t.Fatalf("key %q on the page: %v", key, err)
	}
	if err := chromedp.Do(bctx, chromedp.SendKeys("#code", code), chromedp.Click("#submit"), chromedp.WaitVisible("#codes")); err != nil {
		t.Fatalf("enrolment: %v", err)
	}
	codes, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#codes li")).map(e => e.textContent)`))
	if err != nil || len(codes) != 10 {
		t.Fatalf("recovery codes %q, %v", codes, err)
	}
	if err := chromedp.Do(bctx, chromedp.Click("#continue"), chromedp.WaitVisible("#signout")); err != nil {
		t.Fatal(err)
	}
	if mfa, _ := chromedp.Run(bctx, chromedp.Text("#mfa")); mfa != "proved" {
		t.Fatalf("after enrolment the console says the second factor is %q", mfa)
	}
	if err := chromedp.Do(bctx, chromedp.Click("#signout"), chromedp.WaitVisible("#login")); err != nil {
		t.Fatal(err)
	}
	signIn("#code")
	if err := chromedp.Do(bctx, chromedp.SendKeys("#code", codes[7]), chromedp.Click("#submit"), chromedp.WaitVisible("#signout")); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	m, err := d.MFA(context.Background(), user)
	if err != nil || len(m.Recovery) != 9 {
		t.Fatalf("stored recovery codes after one use: %d, %v", len(m.Recovery), err)
	}
}
