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

	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

const (
	auditSKeyMeta   = "audit/signing-key"  // sealed Ed25519 note signer key
	auditVKeyMeta   = "audit/verifier-key" // public verifier key
	auditVKeyFile   = "audit-verifier.key"
	auditOriginBase = "phivault.audit/"
)

// auditSigner returns the checkpoint signer of the store, creating it on
// first use: the private key is sealed by the barrier, the public key is
// kept in the store and written to DIR/audit-verifier.key.
func (n *node) auditSigner(ctx context.Context) (note.Signer, string, error) {
	aad := barrier.Context("audit", auditSKeyMeta)
	var sealed, vkey []byte
	err := n.db.View(ctx, func(r store.Reader) error {
		var err error
		if sealed, err = r.Meta(auditSKeyMeta); err != nil {
			return err
		}
		vkey, err = r.Meta(auditVKeyMeta)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		skey, vk, err := audit.GenerateKey(auditOriginBase + randomName())
		if err != nil {
			return nil, "", err
		}
		s, err := n.barrier.Seal(ctx, "system", aad, []byte(skey))
		if err != nil {
			return nil, "", err
		}
		err = n.db.Update(ctx, func(tx store.Writer) error {
			if old, err := tx.Meta(auditSKeyMeta); err == nil {
				s = old // created concurrently
				vkb, err := tx.Meta(auditVKeyMeta)
				vk = string(vkb)
				return err
			}
			if err := tx.CreateMeta(auditSKeyMeta, s); err != nil {
				return err
			}
			return tx.CreateMeta(auditVKeyMeta, []byte(vk))
		})
		if err != nil {
			return nil, "", err
		}
		sealed, vkey = s, []byte(vk)
	} else if err != nil {
		return nil, "", err
	}
	skey, err := n.barrier.Open(ctx, aad, sealed)
	if err != nil {
		return nil, "", fmt.Errorf("audit signing key: %w", err)
	}
	signer, err := note.NewSigner(string(skey))
	clear(skey)
	if err != nil {
		return nil, "", fmt.Errorf("audit signing key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(n.dir, auditVKeyFile), append(vkey, '\n'), 0o644); err != nil {
		return nil, "", err
	}
	return signer, string(vkey), nil
}

// randomName returns a short random hex name for a new log's origin.
func randomName() string {
	id, _ := barrier.NewKeyID()
	return id.String()[:16]
}

func runAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "export" {
		return runAuditExport(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "archive" {
		return runAuditArchive(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "verify-archive" {
		return runAuditVerifyArchive(args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "verify" && args[0] != "checkpoint") {
		return fail(exitUsage, "audit needs a subcommand: verify, checkpoint, export, archive or verify-archive", "phivault audit verify --data DIR [--key FILE] [--against FILE]")
	}
	sub := args[0]
	fs, data := newFlags("audit "+sub, "--data DIR [--key FILE] [--against CHECKPOINT_FILE] [--index]", stderr)
	keyFile := fs.String("key", "", "verifier (public) key file; default DIR/"+auditVKeyFile+" (keep a copy elsewhere for independent checks)")
	against := fs.String("against", "", "a checkpoint or witness file saved outside the data directory: the log must extend it")
	index := fs.Bool("index", false, "also rebuild the leaf index (search, access reports, disclosures) from the leaves and compare it with the stored one (a second read of the log)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := needData(*data, "audit"); err != nil {
		return err
	}
	ctx := context.Background()
	n, err := openNode(ctx, *data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server holds the data directory", "verify a copy or a restored backup, or stop the server first")
	}
	if err != nil {
		return err
	}
	defer n.close()
	signer, vkey, err := n.auditSigner(ctx)
	if err != nil {
		return err
	}
	if sub == "checkpoint" {
		cp, err := audit.NewCheckpointer(n.db, audit.NewIntegrator(n.db), signer, audit.CheckpointerOptions{}).Checkpoint(ctx)
		if err != nil {
			return err
		}
		stdout.Write(cp)
		return nil
	}
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fail(exitUsage, "cannot read the verifier key: "+err.Error(), "--key takes the file "+auditVKeyFile+" saved from the data directory")
		}
		vkey = strings.TrimSpace(string(b))
	} else {
		fmt.Fprintln(stderr, "note: using the verifier key stored in the data directory; pass --key with a copy kept elsewhere for an independent check")
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fail(exitUsage, "the verifier key is not valid", "it is a single line such as "+auditOriginBase+"...+hash+key")
	}
	var rep *audit.Report
	err = n.db.View(ctx, func(r store.Reader) error {
		var err error
		if *against != "" {
			rep, err = audit.VerifyAgainst(ctx, r, verifier, *against)
		} else {
			rep, err = audit.Verify(ctx, r, verifier)
		}
		return err
	})
	if err != nil {
		return fail(exitFail, "cannot verify: "+err.Error(), "")
	}
	fmt.Fprintf(stdout, "leaves: %d\nsigned checkpoints verified: %d\nleaves covered by a signed checkpoint: %d\nroot: %x\n", rep.Leaves, rep.Checkpoints, rep.Verified, rep.Root)
	if !rep.OK() {
		for i, p := range rep.Problems {
			if i == 20 {
				fmt.Fprintf(stdout, "... and %d more\n", len(rep.Problems)-20)
				break
			}
			fmt.Fprintf(stdout, "PROBLEM %s\n", p)
		}
		return fail(exitFail, fmt.Sprintf("the audit log does not verify: first bad entry: %s", rep.Problems[0]), "keep this data directory as evidence; restore the log from a verified backup")
	}
	if *index {
		if err := n.db.View(ctx, func(r store.Reader) error { return audit.VerifyIndex(ctx, r) }); err != nil {
			fmt.Fprintf(stdout, "PROBLEM index: %v\n", err)
			return fail(exitFail, "the audit log verifies but its leaf index does not match it: "+err.Error(), "searches and reports may miss events; keep this data directory as evidence")
		}
		fmt.Fprintln(stdout, "index: OK (rebuilt from the leaves, identical)")
	}
	fmt.Fprintln(stdout, "OK: the audit log verifies")
	return nil
}
