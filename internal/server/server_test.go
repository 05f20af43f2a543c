package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

const goodToken = "pv1.good"

// fakeAuth is a test double: one valid token.
type fakeAuth struct{}

func (fakeAuth) Check(tok string) (policy.Principal, error) {
	if tok == goodToken {
		return policy.Principal{UserID: "alice", Roles: []string{"administrator"}, Method: "operator-token"}, nil
	}
	return policy.Principal{}, errors.New("invalid")
}

// fhirDouble stands in for the FHIR handler: it echoes the caller, or
// panics on /fhir/panic.
func fhirDouble() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fhir/panic" {
			panic("secret-panic-detail Patient/p1 John Smith")
		}
		p, ok := policy.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal", 500)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		json.NewEncoder(w).Encode(map[string]any{"user": p.UserID, "roles": p.Roles, "method": p.Method})
	})
}

type env struct {
	st  *sqlite.Backend
	srv *httptest.Server
	log *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cert, _, err := server.DevCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	h := server.Handler(server.Config{
		FHIR: fhirDouble(), Auth: fakeAuth{}, Audit: audit.NewLog(st, 2*time.Second),
		Log: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: server.NewMetrics(),
	})
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = server.TLSConfig(cert)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &env{st: st, srv: srv, log: &logBuf}
}

func (e *env) get(t *testing.T, path, auth string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (e *env) auditSize(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := e.st.View(context.Background(), func(r store.Reader) (err error) {
		n, err = r.AuditSize()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTLSVersions(t *testing.T) {
	e := newEnv(t)
	roots := x509.NewCertPool()
	roots.AddCert(e.srv.Certificate())
	for _, tt := range []struct {
		name   string
		max    uint16
		wantOK bool
	}{{"TLS 1.2", tls.VersionTLS12, false}, {"TLS 1.3", tls.VersionTLS13, true}} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: tt.max}}}
		resp, err := c.Get(e.srv.URL + "/healthz")
		if tt.wantOK {
			if err != nil {
				t.Errorf("%s client: %v", tt.name, err)
				continue
			}
			if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
				t.Errorf("%s client negotiated %v", tt.name, resp.TLS)
			}
			resp.Body.Close()
		} else if err == nil {
			resp.Body.Close()
			t.Errorf("%s client was served", tt.name)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/fhir/Patient/p1", "/no/such/route"} {
		resp, _ := e.get(t, path, "")
		for h, want := range map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "DENY",
			"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get(t, "/healthz", "")
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	for name, auth := range map[string]string{
		"none":         "",
		"bad token":    "Bearer pv1.bad",
		"empty bearer": "Bearer ",
		"basic":        "Basic YWxpY2U6c2VjcmV0",
		"no scheme":    goodToken,
		"lower-case":   "bearer " + goodToken + "x",
	} {
		before := e.auditSize(t)
		resp, body := e.get(t, "/fhir/Patient/p1", auth)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", name, resp.Header.Get("WWW-Authenticate"))
		}
		var oo struct {
			ResourceType string
			Issue        []struct{ Code string }
		}
		if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != "login" {
			t.Errorf("%s: body %q is not a login OperationOutcome (%v)", name, body, err)
		}
		if n := e.auditSize(t); n != before+1 {
			t.Errorf("%s: %d audit events recorded for a failed login, want 1", name, n-before)
		}
	}
	var leaf [][]byte
	e.st.View(context.Background(), func(r store.Reader) (err error) {
		leaf, err = r.AuditLeaves(0, 1)
		return err
	})
	if len(leaf) != 1 || !bytes.Contains(leaf[0], []byte("login-failed")) {
		t.Errorf("audit leaf %q does not record a failed login", leaf)
	}
	resp, body := e.get(t, "/fhir/Patient/p1", "Bearer "+goodToken)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"user":"alice"`)) {
		t.Errorf("valid token: %d %s", resp.StatusCode, body)
	}
}

func TestFailedLoginWithoutAudit(t *testing.T) {
	e := newEnv(t)
	e.st.Close()
	resp, body := e.get(t, "/fhir/Patient/p1", "Bearer nope")
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("OperationOutcome")) {
		t.Errorf("failed login with the audit log down = %d %s, want 503 OperationOutcome", resp.StatusCode, body)
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get(t, "/fhir/panic", "Bearer "+goodToken)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("panic: status %d, want 500", resp.StatusCode)
	}
	if !bytes.Contains(body, []byte(`"resourceType":"OperationOutcome"`)) || !bytes.Contains(body, []byte("internal error")) {
		t.Errorf("panic body %q is not an OperationOutcome", body)
	}
	for _, leak := range []string{"secret-panic-detail", "John Smith", "goroutine", ".go:"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Errorf("panic response leaks %q: %s", leak, body)
		}
	}
	if strings.Contains(e.log.String(), "John Smith") {
		t.Errorf("log holds the panic's patient data: %s", e.log)
	}
	for range 3 {
		if resp, _ := e.get(t, "/fhir/Patient/p1", "Bearer "+goodToken); resp.StatusCode != 200 {
			t.Errorf("after a panic: status %d", resp.StatusCode)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.get(t, "/fhir/Patient/p-secret-id", "Bearer "+goodToken)
	e.get(t, "/fhir/Observation?subject=Patient/p-secret-id", "")
	e.get(t, "/private-path/p-secret-id", "")
	e.get(t, "/healthz", "")
	resp, body := e.get(t, "/metrics", "")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	m := string(body)
	for _, want := range []string{
		`phivault_http_requests_total{method="GET",route="/fhir/",status="200"} 1`,
		`phivault_http_requests_total{method="GET",route="/fhir/",status="401"} 1`,
		`phivault_http_requests_total{method="GET",route="/",status="404"} 1`,
		`phivault_http_requests_total{method="GET",route="GET /healthz",status="200"} 1`,
		`phivault_http_request_duration_seconds_count{method="GET",route="/fhir/"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"p-secret-id", "private-path", "Observation", "subject"} {
		if strings.Contains(m, leak) {
			t.Errorf("metrics hold raw path text %q", leak)
		}
	}
}

func TestDevCertificate(t *testing.T) {
	dir := t.TempDir()
	c1, created, err := server.DevCertificate(dir)
	if err != nil || !created {
		t.Fatalf("first DevCertificate: created=%v, %v", created, err)
	}
	c2, created, err := server.DevCertificate(dir)
	if err != nil || created {
		t.Fatalf("second DevCertificate: created=%v, %v", created, err)
	}
	if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Error("DevCertificate made a new certificate instead of reusing it")
	}
	leaf, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("certificate not valid for %s: %v", host, err)
		}
	}
	if fi, err := statPerm(dir + "/key.pem"); err != nil || fi != 0o600 {
		t.Errorf("key.pem mode %v, %v; want 0600", fi, err)
	}
}

func TestInProcess(t *testing.T) {
	p := policy.Principal{UserID: "op", Roles: []string{"administrator"}, Method: "in-process"}
	c := server.InProcess(fhirDouble(), p)
	resp, err := c.Get("http://phivault/fhir/Patient/p1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"user":"op"`)) || !bytes.Contains(body, []byte(`"method":"in-process"`)) {
		t.Errorf("in-process request = %d %s", resp.StatusCode, body)
	}
}
