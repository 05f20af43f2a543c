package server_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// cookieSessions signs in the browser that sends the cookie "s=nurse".
type cookieSessions struct{}

func (cookieSessions) Principal(r *http.Request) (policy.Principal, bool) {
	if c, err := r.Cookie("s"); err == nil && c.Value == "nurse" {
		return policy.Principal{UserID: "nurse", Roles: []string{"nurse"}, Method: "password+totp", MFA: true}, true
	}
	return policy.Principal{}, false
}

// A signed-in console user reads the FHIR API with the session cookie,
// but never changes anything with it (only a bearer token does), and a
// bearer token, when given, is what counts.
func TestSessionReadsOnly(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := server.Handler(server.Config{FHIR: fhirDouble(), Auth: fakeAuth{}, Sessions: cookieSessions{},
		Audit: audit.NewLog(st, 2*time.Second), Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()})
	for _, c := range []struct {
		method, cookie, auth string
		want                 int
		user                 string
	}{
		{"GET", "nurse", "", 200, "nurse"},
		{"HEAD", "nurse", "", 200, ""},
		{"GET", "someone", "", 401, ""},
		{"GET", "", "", 401, ""},
		{"POST", "nurse", "", 401, ""},
		{"PUT", "nurse", "", 401, ""},
		{"DELETE", "nurse", "", 401, ""},
		{"GET", "nurse", "Bearer " + goodToken, 200, "alice"},
		{"GET", "nurse", "Bearer wrong", 401, ""},
	} {
		req := httptest.NewRequest(c.method, "https://phivault/fhir/Patient/p1", nil)
		if c.cookie != "" {
			req.AddCookie(&http.Cookie{Name: "s", Value: c.cookie})
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.want || (c.user != "" && !bytes.Contains(body, []byte(`"user":"`+c.user+`"`))) {
			t.Errorf("%s cookie=%q auth=%q: %d %s, want %d as %q", c.method, c.cookie, c.auth, rec.Code, body, c.want, c.user)
		}
	}
}
