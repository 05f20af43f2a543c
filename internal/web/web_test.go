package web

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The CSP forbids inline script and style; the templates must not need
// them (a page that did would break silently in the browser).
func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	bad := regexp.MustCompile(`(?i)<style|\sstyle=|<script(?:\s[^>]*)?>[^<]|<script(?:(?:\s+[a-z-]+(?:="[^"]*")?)*)?\s*>|\son[a-z]+=|javascript:`)
	ok := regexp.MustCompile(`<script src="/static/[a-z.]+" defer></script>`)
	for _, s := range []string{`<style>`, `<p style="x">`, `<script>alert(1)</script>`, `<script type="module">x</script>`, `<button onclick="x">`, `<a href="javascript:x">`} {
		if bad.FindString(ok.ReplaceAllString(s, "")) == "" {
			t.Fatalf("the check misses %q", s)
		}
	}
	if s := ok.ReplaceAllString(`<script src="/static/passkey.js" defer></script>`, ""); bad.FindString(s) != "" {
		t.Fatal("the check refuses the external script")
	}
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(path)
		if err != nil {
			return err
		}
		text := ok.ReplaceAllString(string(b), "")
		if m := bad.FindString(text); m != "" {
			t.Errorf("%s: inline script or style: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPasskeySeam(t *testing.T) {
	e := newEnv(t)
	o := e.opts
	o.Passkeys = true
	o.Extra = map[string]http.Handler{"POST /passkey/login/begin": http.NotFoundHandler()}
	routes, err := Handler(o)
	if err != nil {
		t.Fatal(err)
	}
	if routes["POST /passkey/login/begin"] == nil {
		t.Error("the extra route was not mounted")
	}
	for _, tt := range []struct {
		passkeys bool
		want     bool
	}{{false, false}, {true, true}} {
		o.Extra = nil
		o.Passkeys = tt.passkeys
		routes, _ := Handler(o)
		w := newRecorder()
		routes["GET /login"].ServeHTTP(w, getRequest("/login"))
		body := w.Body.String()
		if got := strings.Contains(body, `id="passkey-login"`) && strings.Contains(body, `src="/static/passkey.js"`); got != tt.want {
			t.Errorf("Passkeys=%v: passkey button and script shown = %v", tt.passkeys, got)
		}
	}
	o.Extra = map[string]http.Handler{"GET /login": http.NotFoundHandler()}
	if _, err := Handler(o); err == nil {
		t.Error("an extra route replaced the sign-in page")
	}
}
