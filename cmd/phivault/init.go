package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/server"
)

func runInit(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("init", "--data DIR [--dev-key]", stderr)
	devKey := fs.Bool("dev-key", false, "create an UNPROTECTED key file for development (no passphrase)")
	db := fs.String("db", os.Getenv("PHIVAULT_DB"), "keep the store in this PostgreSQL database (postgres://...; env PHIVAULT_DB) instead of the embedded SQLite file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "init"); err != nil {
		return err
	}
	var pass keys.Secret
	if !*devKey {
		var err error
		if pass, err = passphrase(stderr, true); err != nil {
			return err
		}
		if len(pass) < 12 {
			return fail(exitUsage, "the passphrase is too short", "use at least 12 characters (a few random words work well)")
		}
	}
	if *db != "" {
		if _, err := os.Stat(filepath.Join(*data, keyFileName)); err == nil {
			return fail(exitUsage, *data+" is already a phivault data directory", "use another directory")
		}
		if err := os.MkdirAll(*data, 0o700); err != nil {
			return fail(exitFail, "cannot create "+*data+": "+err.Error(), "check the path and its permissions")
		}
		if err := writeStoreConfig(*data, *db); err != nil {
			return err
		}
	}
	tok, err := initDir(*data, pass, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created phivault data directory %s\n", *data)
	fmt.Fprintf(stdout, "Bootstrap administrator token written to %s (mode 0600, valid 24h).\n", filepath.Join(*data, bootstrapName))
	fmt.Fprintf(stdout, "Keep a copy of %s and its passphrase somewhere safe: without them the data cannot be read.\n", filepath.Join(*data, keyFileName))
	_ = tok
	return nil
}

// initDir creates a data directory: key file, TLS certificate, store, and
// a bootstrap administrator token. An empty passphrase makes a development
// key, announced loudly.
func initDir(dir string, pass keys.Secret, stderr io.Writer) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fail(exitFail, "cannot create "+dir+": "+err.Error(), "check the path and its permissions")
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	kf := filepath.Join(dir, keyFileName)
	if err := keys.CreateFile(kf, pass); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fail(exitUsage, dir+" is already a phivault data directory", "use another directory, or 'phivault serve --data "+dir+"'")
		}
		return "", err
	}
	if len(pass) == 0 {
		fmt.Fprintln(stderr, "WARNING: the key file", kf, "is NOT protected by a passphrase. Anyone who copies the data directory can read everything. Use this only for development and demos.")
	}
	if _, _, err := server.DevCertificate(filepath.Join(dir, tlsDirName)); err != nil {
		return "", err
	}
	if len(pass) > 0 {
		os.Setenv("PHIVAULT_PASSPHRASE", string(pass))
		defer os.Unsetenv("PHIVAULT_PASSPHRASE")
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return "", err
	}
	defer n.close()
	return n.writeBootstrapToken(24 * time.Hour)
}

// writeBootstrapToken mints an administrator token and writes it to
// DIR/bootstrap-token (mode 0600).
func (n *node) writeBootstrapToken(ttl time.Duration) (string, error) {
	tok, _, err := n.tokens.Mint("bootstrap-admin", []string{"administrator"}, ttl)
	if err != nil {
		return "", err
	}
	path := filepath.Join(n.dir, bootstrapName)
	if err := os.WriteFile(path+".tmp", []byte(tok.Reveal()+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok.Reveal(), os.Rename(path+".tmp", path)
}
