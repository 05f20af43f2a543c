//go:build pkcs11

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys/pkcs11/softhsmtest"
)

// TestPKCS11Acceptance is issue 4's first acceptance point: a data
// directory whose KEK is generated in a SoftHSM2 token stores data, reads
// it back after a restart, rotates the KEK in the token and reads again;
// with the token removed nothing opens and the error says why.
func TestPKCS11Acceptance(t *testing.T) {
	const pin = "4821-user-pin"
	tok := softhsmtest.New(t, "phivault-hsm", pin)
	t.Setenv(pkcs11PINEnv, pin)
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()

	code, out, errs := runOut("init", "--data", dir, "--kek", "pkcs11", "--pkcs11-module", softhsmtest.Module, "--pkcs11-token", tok.Label)
	if code != exitOK || !strings.Contains(out, `Generated KEK "phivault-kek"`) {
		t.Fatalf("init: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFileName)); err == nil {
		t.Fatal("a pkcs11 data directory has a key file")
	}
	rec, err := os.ReadFile(filepath.Join(dir, kekConfigName))
	if err != nil || !strings.Contains(string(rec), `"token": "phivault-hsm"`) || bytes.Contains(rec, []byte(pin)) {
		t.Fatalf("provider record %q, %v: want the token and no PIN", rec, err)
	}
	b := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(b, []byte(eraseBundle), 0o600)
	if code, _, errs := runOut("import", "--data", dir, b); code != exitOK {
		t.Fatalf("import: exit %d %s", code, errs)
	}
	read := func(when string, dirs ...string) {
		t.Helper()
		d := dir
		if len(dirs) > 0 {
			d = dirs[0]
		}
		n, err := openNode(ctx, d, slog.New(slog.DiscardHandler), io.Discard)
		if err != nil {
			t.Fatalf("%s: open: %v", when, err)
		}
		defer n.close()
		e, err := n.records.Read(ctx, "Patient", "pat1")
		if err != nil || !strings.Contains(string(e.Body), "Zebedeeshred") {
			t.Fatalf("%s: read Patient/pat1 = %s, %v", when, e.Body, err)
		}
	}
	read("after restart") // every command is a new start of the node

	// The data-key cache keeps the HSM off the request path: 1,000 reads
	// after a start cost one unwrap per data key used, not one per read.
	n, err := lockNode(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hsm, err := openKEK(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingHSM{KEK: hsm}
	if err := n.open(ctx, counted); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		ref := [][2]string{{"Patient", "pat1"}, {"Observation", "obs1"}, {"Patient", "pat2"}}[i%3]
		if _, err := n.records.Read(ctx, ref[0], ref[1]); err != nil {
			t.Fatal(err)
		}
	}
	calls := counted.unwraps.Load()
	closeKEK(hsm)
	n.close()
	if calls > 10 {
		t.Errorf("1,000 reads made %d HSM unwraps; want one per data key used (a handful)", calls)
	}
	t.Logf("HSM unwraps for 1,000 reads after a start: %d", calls)

	code, out, errs = runOut("keys", "rotate", "--data", dir)
	if code != exitOK || !strings.Contains(out, "KEK version 2 created") || !strings.Contains(out, "version 1: wraps 0 data keys") ||
		!strings.Contains(out, `KEK: PKCS#11 token "phivault-hsm"`) {
		t.Fatalf("rotate: exit %d\n%s\n%s", code, out, errs)
	}
	read("after rotation")
	if code, out, errs := runOut("keys", "retire", "--data", dir, "--version", "1"); code != exitOK {
		t.Fatalf("retire 1: exit %d %s %s", code, out, errs)
	}
	read("after retiring version 1")
	code, out, _ = runOut("keys", "status", "--data", dir)
	if code != exitOK || strings.Contains(out, "version 1") || !strings.Contains(out, "version 2 (current): wraps") ||
		strings.Contains(out, "wraps 0 data keys") || strings.Contains(out, "WARNING") {
		t.Fatalf("status: %s", out)
	}

	// A backup holds the provider record and no key material; its restore
	// reads with the same token.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo, idFile := filepath.Join(t.TempDir(), "repo"), filepath.Join(t.TempDir(), "officer.key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	if code, out, errs := runOut("backup", "create", "--data", dir, "--repo", repo, "--recipient", id.Recipient().String()); code != exitOK {
		t.Fatalf("backup create: exit %d\n%s%s", code, out, errs)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if code, out, errs := runOut("restore", "--repo", repo, "--identity", idFile, "--to", restored); code != exitOK || !strings.Contains(out, "OK:") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(restored, keyFileName)); err == nil {
		t.Fatal("the restored PKCS#11 directory has a key file")
	}
	read("after restore", restored)

	// Wrong PIN, no PIN, wrong token: refused, and the message says why.
	for _, c := range []struct {
		name, pin, want string
	}{
		{"wrong PIN", "0000-wrong", "refused the PIN"},
		{"no PIN", "", pkcs11PINEnv + " is not set"},
	} {
		t.Setenv(pkcs11PINEnv, c.pin)
		code, _, errs := runOut("keys", "status", "--data", dir)
		if code != exitKeys || !strings.Contains(errs, c.want) || (c.pin != "" && strings.Contains(errs, c.pin)) {
			t.Errorf("%s: exit %d %q; want exit %d saying %q", c.name, code, errs, exitKeys, c.want)
		}
	}
	t.Setenv(pkcs11PINEnv, pin)

	// Pull the token: neither the CLI nor the server can read anything.
	sub, _ := filepath.Glob(filepath.Join(tok.Dir, "*"))
	if len(sub) != 1 {
		t.Fatalf("token directory holds %v", sub)
	}
	if err := os.Rename(sub[0], filepath.Join(t.TempDir(), "pulled")); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runOut("keys", "status", "--data", dir)
	if code != exitKeys || !strings.Contains(errs, `no token labelled "phivault-hsm"`) || !strings.Contains(errs, "connect the HSM") {
		t.Errorf("status with the token removed: exit %d %q", code, errs)
	}
	if _, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard); err == nil || !strings.Contains(err.Error(), "token not found") {
		t.Errorf("openNode with the token removed = %v; want token not found", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, _, errs = runOut("serve", "--data", dir, "--listen", "127.0.0.1:0")
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve started without its token")
	}
	if code != exitKeys || !strings.Contains(errs, "token not found") {
		t.Errorf("serve with the token removed: exit %d %q", code, errs)
	}
	t.Logf("serve with the token removed says: %s", strings.TrimSpace(errs))
}

// countingHSM counts the unwraps that reach the HSM.
type countingHSM struct {
	barrier.KEK
	unwraps atomic.Int64
}

func (c *countingHSM) Unwrap(ctx context.Context, w barrier.Wrapped) ([]byte, error) {
	c.unwraps.Add(1)
	return c.KEK.Unwrap(ctx, w)
}
