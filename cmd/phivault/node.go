package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/search"
	"github.com/phivault/phivault/internal/store"
)

// Files in a data directory.
const (
	keyFileName   = "kek.json"
	lockFileName  = "lock"
	bootstrapName = "bootstrap-token"
	tlsDirName    = "tls"
	tenant        = "default"
)

var errLocked = errors.New("data directory is in use by a running server")

// errSocketSilent is a command's answer when a server holds the data
// directory (errLocked) but its admin socket, through which the command
// would have asked it, does not answer.
func errSocketSilent() error {
	return fail(exitFail, "a server holds the data directory but its admin socket does not answer", "is the server starting or stuck? try again")
}

// node is an opened data directory: the one writer of its store.
type node struct {
	dir     string
	lock    *os.File
	db      store.Backend
	barrier *barrier.Barrier
	records *records.Store
	audit   *audit.Log
	tokens  *authn.Tokens
	search  *search.Engine
	policy  *policy.Engine // the Cedar decision point over this directory's policy set
	polSync *policySync    // keeps policy on the store's set (policy_store.go)
	log     *slog.Logger
	kek     barrier.KEK // the provider open was given
	seal    *sealState  // nil unless the key file is split into shares
	rot     rotation    // KEK rotation in progress or last done (keys.go)
}

// lockDir takes the exclusive lock of dir, or returns errLocked.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}

// openNode locks and opens dir. The passphrase comes from
// PHIVAULT_PASSPHRASE or a prompt on the terminal; Shamir shares from
// PHIVAULT_SHARES (comma-separated) or one per line on stdin.
func openNode(ctx context.Context, dir string, log *slog.Logger, stderr io.Writer) (*node, error) {
	return openNodeIf(ctx, dir, log, stderr, nil)
}

// openNodeIf is openNode, except that when opening fails with an error
// tolerate accepts, it returns the node as far as it opened (its KEK held,
// released by close).
func openNodeIf(ctx context.Context, dir string, log *slog.Logger, stderr io.Writer, tolerate func(*node, error) bool) (*node, error) {
	n, err := lockNode(dir, log)
	if err != nil {
		return nil, err
	}
	kek, err := openKEK(dir, stderr)
	if err != nil {
		n.close()
		return nil, err
	}
	if err := n.open(ctx, kek); err != nil {
		if tolerate == nil || !tolerate(n, err) {
			closeKEK(kek)
			n.close()
			return nil, err
		}
		n.kek = kek
	}
	return n, nil
}

// lockNode locks dir and opens its store and audit log, but no keys: a
// sealed server starts here and calls open once it is unsealed.
func lockNode(dir string, log *slog.Logger) (*node, error) {
	if !isDataDir(dir) {
		return nil, fail(exitUsage, fmt.Sprintf("%s is not a phivault data directory", dir), "create one with 'phivault init --data "+dir+"'")
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	n := &node{dir: dir, lock: lock, log: log}
	if n.db, err = openStore(context.Background(), dir); err != nil {
		n.close()
		var ce *cliError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	n.audit = audit.NewLog(n.db, 5*time.Second)
	return n, nil
}

// open opens the barrier and everything above it with kek.
func (n *node) open(ctx context.Context, kek barrier.KEK) error {
	var err error
	if n.barrier, err = barrier.Open(ctx, kek, n.db, 10_000); err != nil {
		if _, isFile := kek.(*keys.File); !isFile && (errors.Is(err, keys.ErrUnknownKEK) || errors.Is(err, keys.ErrCorrupt)) {
			return fail(exitKeys, "the KEK provider cannot unwrap this store's keys: "+err.Error(), "is this the token and key created with this data directory?")
		}
		if errors.Is(err, keys.ErrUnknownKEK) || errors.Is(err, keys.ErrCorrupt) {
			return fail(exitKeys, "the key file cannot unwrap this store's keys", "is this the key file created with this data directory?")
		}
		return fmt.Errorf("open barrier: %w", err)
	}
	if n.tokens, err = authn.OpenTokens(ctx, n.db, n.barrier); err != nil {
		return err
	}
	n.search = search.New(n.barrier)
	n.records = records.New(n.db, n.barrier, n.search, tenant)
	n.search.SetRecords(n.records)
	if err := n.search.LoadParams(ctx); err != nil {
		return fmt.Errorf("load custom search parameters: %w", err)
	}
	if n.policy, err = n.openPolicy(); err != nil {
		return err
	}
	n.kek = kek
	return nil
}

// openKEK opens the KEK provider of dir: the PKCS#11 token named in
// DIR/kek-provider.json (PIN from PHIVAULT_PKCS11_PIN), or the key file.
func openKEK(dir string, stderr io.Writer) (barrier.KEK, error) {
	if c, ok, err := readKEKConfig(dir); err != nil || ok {
		if err != nil {
			return nil, err
		}
		pin, err := pkcs11PIN()
		if err != nil {
			return nil, err
		}
		return openPKCS11(c.pkcs11(pin))
	}
	path := filepath.Join(dir, keyFileName)
	kind, threshold, _, err := keys.Protection(path)
	if err != nil {
		return nil, fail(exitKeys, "the key file "+path+" is unreadable or corrupt", "restore it from your key backup")
	}
	if kind == "shamir" {
		return openKEKShares(path, threshold, stderr)
	}
	var pass keys.Secret
	if kind == "passphrase" {
		if pass, err = passphrase(stderr, false); err != nil {
			return nil, err
		}
	}
	kek, err := keys.OpenFile(path, pass)
	switch {
	case errors.Is(err, keys.ErrWrongPassphrase):
		return nil, fail(exitKeys, "wrong passphrase for "+path, "the passphrase is the one given to 'phivault init'")
	case err != nil:
		return nil, fail(exitKeys, "cannot open the key file: "+err.Error(), "restore the key file from your key backup")
	}
	return kek, nil
}

// passphrase reads PHIVAULT_PASSPHRASE, or prompts on the terminal
// (twice when confirm is set).
func passphrase(stderr io.Writer, confirm bool) (keys.Secret, error) {
	if p := os.Getenv("PHIVAULT_PASSPHRASE"); p != "" {
		return keys.Secret(p), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fail(exitKeys, "the key file is sealed by a passphrase and there is no terminal to ask for it", "set PHIVAULT_PASSPHRASE")
	}
	fmt.Fprint(stderr, "Passphrase: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(stderr, "Passphrase again: ")
		q, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		if string(p) != string(q) {
			return nil, fail(exitUsage, "the passphrases do not match", "run the command again")
		}
	}
	return keys.Secret(p), nil
}

// api returns the FHIR API over the node.
func (n *node) api(base string) *fhirapi.API {
	return fhirapi.New(fhirapi.Config{
		Records: n.records, Search: n.search, Policy: n.policy, Audit: n.audit,
		Log: n.log, Base: base, Version: version,
		Export: fhirapi.ExportConfig{Barrier: n.barrier},
	})
}

// closeKEK releases a provider that holds a resource (a PKCS#11 session).
func closeKEK(k barrier.KEK) {
	if c, ok := k.(interface{ Close() error }); ok {
		c.Close()
	}
}

func (n *node) close() {
	closeKEK(n.kek)
	if n.db != nil {
		n.db.Close()
	}
	if n.lock != nil {
		n.lock.Close()
	}
}
