package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/server"
)

func runInit(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("init", "--data DIR [--dev-key | --kek pkcs11 --pkcs11-module LIB --pkcs11-token LABEL]", stderr)
	devKey := fs.Bool("dev-key", false, "create an UNPROTECTED key file for development (no passphrase)")
	kekKind := fs.String("kek", "file", "KEK provider: file (a key file sealed by a passphrase) or pkcs11 (an HSM token; PIN in "+pkcs11PINEnv+")")
	p11Module := fs.String("pkcs11-module", "", "with --kek pkcs11: path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
	p11Token := fs.String("pkcs11-token", "", "with --kek pkcs11: label of the token that holds the KEK")
	p11Key := fs.String("pkcs11-key", "phivault-kek", "with --kek pkcs11: label of the KEK in the token (generated when absent)")
	db := fs.String("db", os.Getenv("PHIVAULT_DB"), "keep the store in this PostgreSQL database (postgres://...; env PHIVAULT_DB) instead of the embedded SQLite file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "init"); err != nil {
		return err
	}
	var hsm *kekConfig
	switch *kekKind {
	case "file":
		if *p11Module != "" || *p11Token != "" {
			return fail(exitUsage, "--pkcs11-module and --pkcs11-token need --kek pkcs11", "add --kek pkcs11")
		}
	case "pkcs11":
		if *devKey {
			return fail(exitUsage, "--dev-key and --kek pkcs11 exclude each other", "choose one KEK provider")
		}
		hsm = &kekConfig{Provider: "pkcs11", Module: *p11Module, Token: *p11Token, Key: *p11Key}
	default:
		return fail(exitUsage, "unknown --kek "+*kekKind, "use --kek file or --kek pkcs11")
	}
	var pass keys.Secret
	if hsm != nil {
		if err := initPKCS11(*data, *hsm, stdout); err != nil {
			return err
		}
	} else if !*devKey {
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
	fmt.Fprintf(stdout, "Bootstrap operator token written to %s (mode 0600, valid 24h; it can do everything: keep it secret).\n", filepath.Join(*data, bootstrapName))
	if hsm != nil {
		fmt.Fprintf(stdout, "The KEK is key %q in PKCS#11 token %q: without that token (and its backup) the data cannot be read.\n", hsm.Key, hsm.Token)
	} else {
		fmt.Fprintf(stdout, "Keep a copy of %s and its passphrase somewhere safe: without them the data cannot be read.\n", filepath.Join(*data, keyFileName))
	}
	_ = tok
	return nil
}

// initDir creates a data directory: key file, TLS certificate, store, and
// a bootstrap operator token. An empty passphrase makes a development
// key, announced loudly.
func initDir(dir string, pass keys.Secret, stderr io.Writer) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fail(exitFail, "cannot create "+dir+": "+err.Error(), "check the path and its permissions")
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	kf := filepath.Join(dir, keyFileName)
	_, hsm, err := readKEKConfig(dir)
	if err != nil {
		return "", err
	}
	if !hsm {
		if err := keys.CreateFile(kf, pass); err != nil {
			if errors.Is(err, os.ErrExist) {
				return "", fail(exitUsage, dir+" is already a phivault data directory", "use another directory, or 'phivault serve --data "+dir+"'")
			}
			return "", err
		}
	}
	if len(pass) == 0 && !hsm {
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

// writeBootstrapToken mints an operator token and writes it to
// DIR/bootstrap-token (mode 0600).
func (n *node) writeBootstrapToken(ttl time.Duration) (string, error) {
	tok, _, err := n.tokens.Mint("bootstrap-operator", []string{authn.OperatorRole}, ttl)
	if err != nil {
		return "", err
	}
	path := filepath.Join(n.dir, bootstrapName)
	if err := os.WriteFile(path+".tmp", []byte(tok.Reveal()+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok.Reveal(), os.Rename(path+".tmp", path)
}

// initPKCS11 makes or finds the KEK in the token and records the provider
// in a new data directory (before the rest of initDir runs).
func initPKCS11(dir string, c kekConfig, stdout io.Writer) error {
	pin, err := pkcs11PIN()
	if err != nil {
		return err
	}
	if err := c.pkcs11(pin).Validate(); err != nil {
		return fail(exitUsage, strings.ReplaceAll(err.Error(), "\n", "; "), "--kek pkcs11 needs --pkcs11-module, --pkcs11-token and "+pkcs11PINEnv)
	}
	if isDataDir(dir) {
		return fail(exitUsage, dir+" is already a phivault data directory", "use another directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(exitFail, "cannot create "+dir+": "+err.Error(), "check the path and its permissions")
	}
	created, err := createPKCS11(c.pkcs11(pin))
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "Generated KEK %q (AES-256, not extractable) in PKCS#11 token %q.\n", c.Key, c.Token)
	} else {
		fmt.Fprintf(stdout, "Using the existing KEK %q in PKCS#11 token %q.\n", c.Key, c.Token)
	}
	return writeKEKConfig(dir, c)
}
