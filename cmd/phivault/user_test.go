package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/server"
)

// With a server holding the data directory, the account commands reach it
// through the admin socket and act on the server's own Directory: a user
// disabled from the CLI is refused by the very next Valid the server's
// authenticator makes (revocation at once, not within a refresh), and the
// audit names the operator behind the socket.
func TestAccountCommandsThroughAdminSocket(t *testing.T) {
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	d, err := account.Open(ctx, n.db, n.barrier, account.DefaultOptions(n.audit))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.ListenAdmin(filepath.Join(dir, server.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /admin/accounts", accountsAdminHandler(d, n.audit))
	srv := &http.Server{Handler: server.AdminHandler(mux), ConnContext: server.AdminConnContext}
	go srv.Serve(ln)
	defer srv.Close()

	old := stdin
	t.Cleanup(func() { stdin = old })
	cli := func(in string, args ...string) (string, string, int) {
		t.Helper()
		stdin = strings.NewReader(in)
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return out.String(), errb.String(), code
	}
	if out, errs, code := cli("violet-otter-trombone-42\n", "user", "add", "--data", dir, "nina", "--role", "nurse", "--password-stdin"); code != 0 || !strings.Contains(out, "created user nina") {
		t.Fatalf("user add: %d %q %q", code, out, errs)
	}
	// Created on the server, visible to it at once.
	if _, err := d.Valid(ctx, "nina", 1); err != nil {
		t.Fatalf("Valid after add: %v", err)
	}
	if _, err := d.Login(ctx, "nina", "violet-otter-trombone-42", "192.0.2.1"); err != nil {
		t.Fatalf("login with the password given on stdin: %v", err)
	}
	// Errors keep their one line, hint and exit code across the socket.
	if _, errs, code := cli("short\n", "user", "password", "--data", dir, "nina", "--password-stdin"); code != exitUsage || !strings.Contains(errs, "at least 12 characters") || !strings.Contains(errs, "hint: ") {
		t.Fatalf("weak password through the socket: %d %q", code, errs)
	}
	if _, errs, code := cli("", "user", "show", "--data", dir, "ghost"); code != exitFail || !strings.Contains(errs, "no such user") {
		t.Fatalf("unknown user through the socket: %d %q", code, errs)
	}
	if _, errs, code := cli("", "user", "disable", "--data", dir, "nina", "--reason", "stolen badge"); code != 0 {
		t.Fatalf("disable: %d %q", code, errs)
	}
	if _, err := d.Valid(ctx, "nina", 1); !errors.Is(err, account.ErrDisabled) {
		t.Fatalf("Valid right after a disable through the socket: %v, want ErrDisabled", err)
	}
	if out, _, code := cli("", "access-review", "--data", dir, "--csv"); code != 0 || !strings.Contains(out, "\nnina,,nurse,") || !strings.Contains(out, ",true,false,") {
		t.Fatalf("access-review --csv through the socket: %d %q", code, out)
	}
}

// The account command lines never panic and reject bad input with a
// usage error (exit 2) or help.
func FuzzAccountArgs(f *testing.F) {
	for _, s := range []string{
		"user add --data d bob --role nurse --password-stdin",
		"user roles --data d bob --set nurse,billing",
		"training record --data d bob --completed 2026-01-01 --expires 2027-01-01",
		"access-review --data d --keep bob=nurse --revoke eve=billing",
		"access-review --data d --keep bob= --revoke x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		if len(args) == 0 {
			return
		}
		_, err := parseAccount(args[0], args[1:], io.Discard)
		var ce *cliError
		if err != nil && !errors.As(err, &ce) && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%q: error %v is neither a usage error nor help", line, err)
		}
		if ce != nil && ce.code != exitUsage {
			t.Fatalf("%q: exit code %d for a parse error", line, ce.code)
		}
	})
}
