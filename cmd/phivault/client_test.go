package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestClientRemove: a removed client is gone from the list, and removing
// it again is a usage error.
func TestClientRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	runOK := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	runOK("init", "--data", dir, "--dev-key")
	out := runOK("client", "add", "--data", dir, "--name", "App", "--type", "public", "--redirect-uri", "https://app.example/cb", "--scope", "openid")
	m := regexp.MustCompile(`(?m)^client_id: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("add printed %q", out)
	}
	if !strings.Contains(runOK("client", "list", "--data", dir), m[1]) {
		t.Fatal("the new client is not listed")
	}
	runOK("client", "remove", "--data", dir, m[1])
	if strings.Contains(runOK("client", "list", "--data", dir), m[1]) {
		t.Error("a removed client is still listed")
	}
	var errb bytes.Buffer
	if code := run([]string{"client", "remove", "--data", dir, m[1]}, &bytes.Buffer{}, &errb); code != exitUsage || !strings.Contains(errb.String(), "no such client") {
		t.Errorf("removing twice: exit %d, %q", code, errb.String())
	}
}
