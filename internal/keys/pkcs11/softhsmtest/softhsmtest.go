// Package softhsmtest makes throwaway SoftHSM2 tokens for tests of the
// PKCS#11 provider. Each token lives in its own temporary directory, named
// by a softhsm2.conf that SOFTHSM2_CONF points to for the test's duration
// (so tests that use it cannot run in parallel).
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is where Debian's softhsm2 package installs the library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// SOPIN is the security officer PIN of the tokens made here.
const SOPIN = "so-secret-1234"

// Token is a SoftHSM2 token made for one test.
type Token struct {
	Label string
	PIN   string
	Dir   string // the token directory (remove or move it to pull the token)
	Conf  string // the softhsm2.conf naming Dir
}

// Require skips t when SoftHSM2 is not installed, or fails it when the
// environment variable CI is "true" (CI must run these tests).
func Require(t testing.TB) {
	t.Helper()
	missing := ""
	if _, err := os.Stat(Module); err != nil {
		missing = Module
	} else if _, err := exec.LookPath("softhsm2-util"); err != nil {
		missing = "softhsm2-util"
	}
	if missing == "" {
		return
	}
	msg := fmt.Sprintf("SoftHSM2 is not installed (%s missing): apt-get install softhsm2", missing)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// New makes a token labelled label with user PIN pin in a new temporary
// directory and points SOFTHSM2_CONF at it until t ends.
func New(t testing.TB, label, pin string) *Token {
	t.Helper()
	Require(t)
	root := t.TempDir()
	tok := &Token{Label: label, PIN: pin, Dir: filepath.Join(root, "tokens"), Conf: filepath.Join(root, "softhsm2.conf")}
	if err := os.Mkdir(tok.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tok.Dir)
	if err := os.WriteFile(tok.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SOPIN, "--pin", pin).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}
