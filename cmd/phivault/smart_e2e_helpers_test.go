package main

// Helpers of the SMART on FHIR end-to-end tests: the real server (serve,
// with its admin socket), accounts made with the CLI, a cookie-jar
// browser that signs in through the console's own pages (password, then
// TOTP), and an OAuth client from golang.org/x/oauth2.

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
)

// liveServer is a data directory served by serve itself, as
// 'phivault serve' runs it: public TLS listener and admin socket.
type liveServer struct {
	dir, base string // base: https://127.0.0.1:PORT
	tls       *http.Client
	op        string // an operator token, minted through the admin socket
	logs      *lockedBuffer
}

// startServe initializes a fresh data directory and runs serve on it
// until the test ends (stopped by SIGINT, as under a terminal).
func startServe(t *testing.T) *liveServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	s := &liveServer{dir: dir, logs: &lockedBuffer{}}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: dir, listen: "127.0.0.1:0", logLevel: "info", ready: func(u string) { ready <- u }}, s.logs)
	}()
	select {
	case s.base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the server did not start")
	}
	t.Cleanup(func() {
		select {
		case <-done: // already stopped: a SIGINT now would end the test binary
			return
		default:
		}
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		if err := <-done; err != nil {
			t.Errorf("serve stopped with %v", err)
		}
	})
	s.tls = tlsClient(t, filepath.Join(dir, tlsDirName, "cert.pem"))
	code, out, errs := runOut("token", "--data", dir, "--role", "operator")
	if code != exitOK {
		t.Fatalf("token: exit %d %s", code, errs)
	}
	s.op = strings.TrimSpace(out)
	return s
}

// cli runs a phivault command with in as its standard input.
func cliIn(t *testing.T, in string, args ...string) string {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(in)
	defer func() { stdin = old }()
	code, out, errs := runOut(args...)
	if code != exitOK {
		t.Fatalf("phivault %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// put stores a resource with the operator token.
func (s *liveServer) put(t *testing.T, res map[string]any) {
	t.Helper()
	b, _ := json.Marshal(res)
	rel := res["resourceType"].(string) + "/" + res["id"].(string)
	st, body := s.fhir(t, http.MethodPut, rel, s.op, b)
	if st != http.StatusOK && st != http.StatusCreated {
		t.Fatalf("PUT %s: %d %s", rel, st, body)
	}
}

// fhir sends a FHIR request with a bearer token ("" for none) and
// returns status and body.
func (s *liveServer) fhir(t *testing.T, method, rel, token string, body []byte) (int, string) {
	t.Helper()
	return s.send(t, s.tls, method, s.base+"/fhir/"+rel, token, body)
}

func (s *liveServer) send(t *testing.T, c *http.Client, method, u, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// person is an account whose authenticator app the test holds.
type person struct {
	id, password string
	secret       string // base32 TOTP secret, once enrolled
	step         int64  // the last TOTP step used
}

// browser is a cookie-jar client that trusts the server and does not
// follow redirects, so each step of a sign-in is seen.
type browser struct {
	t *testing.T
	s *liveServer
	c *http.Client
}

func (s *liveServer) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: s.tls.Transport, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, s: s, c: c}
}

// webPage is one response as a browser sees it.
type webPage struct {
	status   int
	location string
	body     string
}

func (b *browser) do(method, target string, form url.Values) webPage {
	b.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = b.s.base + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return webPage{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(raw)}
}

// follow GETs target and every same-site redirect after it, and returns
// the last page (a redirect off the site is returned, not followed).
func (b *browser) follow(target string) webPage {
	b.t.Helper()
	for range 10 {
		p := b.do(http.MethodGet, target, nil)
		if p.location == "" || p.status < 300 || p.status > 399 {
			return p
		}
		if !strings.HasPrefix(p.location, "/") && !strings.HasPrefix(p.location, b.s.base+"/") {
			return p
		}
		target = p.location
	}
	b.t.Fatalf("too many redirects from %s", target)
	return webPage{}
}

var inputRE = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*?(?:value="([^"]*)")?>`)

// inputs returns a page's form inputs by name.
func (p webPage) inputs() url.Values {
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// code returns the person's authenticator code for the next unused
// step, a step at most one ahead of now (the server allows one step of
// skew), so two sign-ins in a row need no wait.
func (u *person) code(t *testing.T) string {
	t.Helper()
	now := time.Now().Unix() / 30
	step := max(now-1, u.step+1)
	if step > now+1 {
		time.Sleep(time.Duration((step-1)*30-time.Now().Unix()+1) * time.Second)
	}
	u.step = step
	c, err := totp.GenerateCodeCustom(u.secret, time.Unix(step*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signIn goes through the sign-in page that p (a redirect to /login)
// leads to: the password, then TOTP enrolment the first time or the TOTP
// code after, and returns the page the console then forwards to.
func (b *browser) signIn(u *person, p webPage) webPage {
	b.t.Helper()
	if !strings.HasPrefix(p.location, "/login") {
		b.fail(p, "a redirect to the sign-in page")
	}
	login := b.follow(p.location)
	f := url.Values{"csrf": {login.inputs().Get("csrf")}, "user": {u.id}, "password": {u.password}}
	p = b.do(http.MethodPost, "/login", f)
	switch p.location {
	case "/account/totp": // first sign-in of a role that needs a second factor
		enrol := b.follow(p.location)
		in := enrol.inputs()
		u.secret = in.Get("secret")
		if u.secret == "" {
			b.fail(enrol, "the enrolment page with a new key")
		}
		done := b.do(http.MethodPost, "/account/totp", url.Values{"csrf": {in.Get("csrf")}, "secret": {u.secret}, "code": {u.code(b.t)}})
		if done.status != http.StatusOK || !strings.Contains(done.body, "Recovery codes") {
			b.fail(done, "the recovery codes after enrolment")
		}
	case "/login/totp":
		second := b.follow(p.location)
		p = b.do(http.MethodPost, "/login/totp", url.Values{"csrf": {second.inputs().Get("csrf")}, "code": {u.code(b.t)}})
		if p.location != "/console/" {
			b.fail(p, "the console after the second factor")
		}
	default:
		b.fail(p, "the second factor after the password")
	}
	return b.follow("/console/") // forwards once to the page that asked for the sign-in
}

// fail fails the test showing what the browser got instead of want.
func (b *browser) fail(p webPage, want string) {
	b.t.Helper()
	body := p.body
	if len(body) > 600 {
		body = body[:600]
	}
	b.t.Fatalf("want %s; got %d Location=%q %s", want, p.status, p.location, body)
}

// approve submits a consent page with "Allow" (and a patient id when the
// page asks for one) and returns the redirect to the app.
func (b *browser) approve(consent webPage, patient string) *url.URL {
	b.t.Helper()
	if consent.status != http.StatusOK || !strings.Contains(consent.body, `value="approve"`) {
		b.fail(consent, "the consent page")
	}
	f := consent.inputs()
	f.Set("consent", "approve")
	if patient != "" {
		f.Set("patient", patient)
	}
	p := b.do(http.MethodPost, "/oauth/authorize", f)
	u, err := url.Parse(p.location)
	if p.status != http.StatusSeeOther || err != nil || u.Query().Get("code") == "" {
		b.fail(p, "a redirect to the app with a code")
	}
	return u
}

// ctx returns a context whose oauth2 calls use the server-trusting client.
func (s *liveServer) ctx(t *testing.T) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, s.tls)
}
