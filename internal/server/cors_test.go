package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/phivault/phivault/internal/browsertest"
)

// TestCORSPreflight: a preflight for the FHIR API is answered without
// credentials and without an audit event (it reads nothing), and allows
// the methods and headers the API uses; an actual cross-origin request
// still needs its bearer token, and no answer allows credentials.
func TestCORSPreflight(t *testing.T) {
	e := newEnv(t)
	before := e.auditSize(t)
	req, _ := http.NewRequest("OPTIONS", e.srv.URL+"/fhir/Patient/p1", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, if-match")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "If-Match") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	if n := e.auditSize(t); n != before {
		t.Errorf("a preflight wrote %d audit events", n-before)
	}
	for _, auth := range []string{"", "Bearer " + goodToken} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/fhir/Patient/p1", nil)
		req.Header.Set("Origin", "https://app.example")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := map[bool]int{false: 401, true: 200}[auth != ""]
		if resp.StatusCode != want || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Location") {
			t.Errorf("cross-origin GET with %q: %d %v, want %d with CORS headers", auth, resp.StatusCode, resp.Header, want)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("cross-origin GET allows credentials")
		}
	}
}

// TestChromiumCORS: a browser app on another origin reads and writes the
// FHIR API with its bearer token (a PUT needs a preflight), while a
// request that asks the browser to send cookies is refused by the browser.
func TestChromiumCORS(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; run without -short")
	}
	browsertest.Need(t)
	e := newEnv(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><pre id="out"></pre><script>
const out = document.getElementById("out");
const call = (opts) => fetch(%q, opts).then(r => r.status + " " + (r.headers.get("ETag") || "-")).catch(e => "refused");
Promise.all([
  call({headers: {Authorization: "Bearer %s"}}),
  call({method: "PUT", headers: {Authorization: "Bearer %s", "Content-Type": "application/fhir+json", "If-Match": "W/\"1\""}, body: "{}"}),
  call({credentials: "include"}),
]).then(rs => { out.textContent = rs.join("|"); out.id = "done"; });
</script>`, e.srv.URL+"/fhir/Patient/p1", goodToken, goodToken)
	}))
	t.Cleanup(app.Close)
	ctx := browsertest.Context(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(app.URL), chromedp.WaitVisible("#done")); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text("#done"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(got, "|")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "200 ") || !strings.HasPrefix(parts[1], "200 ") || parts[2] != "refused" {
		t.Errorf("from another origin: GET, PUT, credentialed GET = %q; want 200, 200, refused", got)
	}
}
