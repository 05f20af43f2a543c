package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The --sso-config file is checked as a whole before serve starts: unknown
// fields, bad JSON and invalid settings are one-line usage errors; the
// client secret comes only from the environment; the login cookie key is
// the same for every node of one store.
func TestSSOConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "sso.json")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	good := `{"name":"Hospital IdP","issuer":"https://idp.example.org","clientId":"phivault",
	  "redirectUrl":"https://ehr.example.org/sso/callback","roleMap":{"doctors":["physician"]}}`
	t.Setenv(ssoSecretEnv, "s3cret-from-the-environment")
	c, name, err := n.readSSOConfig(write(good))
	if err != nil || name != "Hospital IdP" || c.ClientID != "phivault" || string(c.ClientSecret) != "s3cret-from-the-environment" || len(c.CookieKey) < 32 {
		t.Fatalf("good config: %+v %q %v", c, name, err)
	}
	c2, _, _ := n.readSSOConfig(write(good))
	if string(c2.CookieKey) != string(c.CookieKey) {
		t.Error("the login cookie key differs between two readings of one store")
	}
	for label, body := range map[string]string{
		"not JSON":      `{"issuer":`,
		"unknown field": strings.Replace(good, `"clientId"`, `"clientSecret":"x","clientId"`, 1),
		"http issuer":   strings.Replace(good, "https://idp", "http://idp", 1),
		"unknown role":  strings.Replace(good, `["physician"]`, `["superuser"]`, 1),
		"no role map":   strings.Replace(good, `,"roleMap":{"doctors":["physician"]}`, ``, 1),
	} {
		_, _, err := n.readSSOConfig(write(body))
		var ce *cliError
		if !errors.As(err, &ce) || ce.code != exitUsage || strings.Contains(ce.msg, "\n") {
			t.Errorf("%s: %v, want a one-line usage error", label, err)
		}
	}
	if _, _, err := n.readSSOConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file is accepted")
	}
}
