//go:build !pkcs11

package main

import (
	"strings"
	"testing"
)

// TestPKCS11NotBuiltIn: without the pkcs11 build tag, choosing the
// provider is one clear line with the hint to build it in.
func TestPKCS11NotBuiltIn(t *testing.T) {
	t.Setenv(pkcs11PINEnv, "1234")
	dir := t.TempDir()
	code, _, errs := runOut("init", "--data", dir, "--kek", "pkcs11", "--pkcs11-module", "/usr/lib/softhsm/libsofthsm2.so", "--pkcs11-token", "t")
	if code != exitKeys || !strings.Contains(errs, "built without PKCS#11 support") || !strings.Contains(errs, "-tags pkcs11") {
		t.Fatalf("init --kek pkcs11 without the tag: exit %d %q", code, errs)
	}
	if isDataDir(dir) {
		t.Fatal("a data directory was made anyway")
	}
}
