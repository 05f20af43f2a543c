package main

import (
	"strings"
	"testing"
)

func TestPKCS11ConfigRecord(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"provider":"pkcs11","module":"/m.so","token":"t","key":"k"}`, true},
		{`{"provider":"vault","module":"/m.so","token":"t","key":"k"}`, false},
		{`{"provider":"pkcs11","module":"","token":"t","key":"k"}`, false},
		{`{"provider":"pkcs11","module":"/m.so","token":"a:b","key":"k"}`, false},
		{`{"provider":"pkcs11"`, false},
	} {
		if _, err := parseKEKConfig([]byte(c.in)); (err == nil) != c.ok {
			t.Errorf("parseKEKConfig(%s) = %v; want ok %v", c.in, err, c.ok)
		}
	}
}

// TestPKCS11InitFlags: bad provider flags are refused before anything is
// made.
func TestPKCS11InitFlags(t *testing.T) {
	t.Setenv(pkcs11PINEnv, "1234")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--kek", "kms"}, "unknown --kek"},
		{[]string{"--pkcs11-token", "t"}, "need --kek pkcs11"},
		{[]string{"--kek", "pkcs11", "--dev-key"}, "exclude each other"},
		{[]string{"--kek", "pkcs11", "--pkcs11-token", "t"}, "no module path"},
	} {
		dir := t.TempDir()
		code, _, errs := runOut(append([]string{"init", "--data", dir}, c.args...)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("init %v: exit %d %q; want usage error with %q", c.args, code, errs, c.want)
		}
		if isDataDir(dir) {
			t.Errorf("init %v made a data directory", c.args)
		}
	}
}

func FuzzParseKEKConfig(f *testing.F) {
	f.Add([]byte(`{"provider":"pkcs11","module":"/m.so","token":"t","key":"k"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseKEKConfig(b)
		if err == nil && (c.Provider != "pkcs11" || c.Module == "" || c.Token == "" || c.Key == "") {
			t.Fatalf("accepted an incomplete record %+v", c)
		}
	})
}
