package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/store/sqlite"
)

func runBackupVerify(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("backup verify", "--repo PATH|s3://BUCKET/PREFIX [--identity FILE | --data DIR] [--read-data] [--subset N%]", stderr)
	repo := fs.String("repo", "", "backup repository: a directory or s3://bucket/prefix")
	s3 := addS3Flags(fs, false)
	identity := fs.String("identity", "", "a recipient's age identity file (needed for --read-data); without it, the write key in --data DIR reads the manifests")
	readData := fs.Bool("read-data", false, "decrypt and hash the chunks (needs --identity)")
	subset := fs.String("subset", "", "with --read-data, read only this share of the chunks, e.g. 10%")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *repo == "" {
		return fail(exitUsage, "no repository given", "pass --repo PATH")
	}
	opt := backup.VerifyOptions{ReadData: *readData}
	if *subset != "" {
		p, err := strconv.ParseFloat(strings.TrimSuffix(*subset, "%"), 64)
		if err != nil || p <= 0 || p > 100 {
			return fail(exitUsage, "--subset takes a percentage such as 10%", "")
		}
		opt.Subset = p / 100
	}
	st, err := s3.storage(context.Background(), *repo, false)
	if err != nil {
		return err
	}
	var ids []age.Identity
	switch {
	case *identity != "":
		var err error
		if ids, err = readIdentities(*identity); err != nil {
			return err
		}
	case *readData:
		return fail(exitUsage, "--read-data needs --identity", "only a backup recipient's identity decrypts chunks")
	case *data != "":
		id, err := nodeServerIdentity(*data, st)
		if err != nil {
			return err
		}
		ids = []age.Identity{id}
	default:
		return fail(exitUsage, "verify needs --identity FILE or --data DIR (the node's write key)", "")
	}
	rd, err := backup.OpenReaderIn(st, ids)
	if err != nil {
		return repoError(err)
	}
	rep, err := rd.Verify(context.Background(), opt)
	if err != nil {
		return repoError(err)
	}
	fmt.Fprintf(stdout, "snapshots: %d (%d good)\nchunks: %d referenced, %d read and hashed\n", rep.Snapshots, rep.Good, rep.Chunks, rep.ChunksRead)
	if rep.OK() {
		fmt.Fprintln(stdout, "OK: no damage found")
		return nil
	}
	for _, d := range rep.Damage {
		fmt.Fprintln(stdout, "DAMAGED", d)
	}
	for _, a := range rep.Altered {
		fmt.Fprintln(stdout, "ALTERED", a)
	}
	if len(rep.Damage) == 0 {
		return fail(exitFail, fmt.Sprintf("%d repository objects were written over or deleted after the backup; the locked first versions are intact", len(rep.Altered)),
			"treat the server's credentials as stolen: rotate them, investigate, and restore from this repository if needed")
	}
	return fail(exitFail, fmt.Sprintf("%d damaged items in %d snapshots", len(rep.Damage), rep.Snapshots-rep.Good),
		"restore from a good snapshot (see the list above); keep the repository as evidence")
}

// nodeServerIdentity is the manifest-reading identity of the node's
// write key for the repository in st.
func nodeServerIdentity(data string, st backup.Storage) (age.Identity, error) {
	k, _ := findWriteKey(data, st)
	if k == nil {
		return nil, fail(exitFail, "the node "+data+" holds no write key for "+st.String(), "pass --identity FILE")
	}
	return k.ServerIdentity()
}

func repoError(err error) error {
	switch {
	case errors.Is(err, backup.ErrNoIdentity):
		return fail(exitKeys, "none of the given identities can decrypt this repository", "use the identity of one of the repository's recipients")
	case errors.Is(err, backup.ErrNoRepo):
		return fail(exitUsage, err.Error(), "check --repo")
	}
	return fail(exitFail, err.Error(), "")
}

func runRestore(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "drill" {
		return runRestoreDrill(args[1:], stdout, stderr)
	}
	fs, _ := newFlags("restore", "--repo PATH|s3://BUCKET/PREFIX --identity FILE [--snapshot ID | --before TIME] --to NEWDIR [--shredded-keys FILE ...]", stderr)
	repo := fs.String("repo", "", "backup repository: a directory or s3://bucket/prefix")
	s3 := addS3Flags(fs, false)
	identity := fs.String("identity", "", "a recipient's age identity file")
	snap := fs.String("snapshot", "", "snapshot id (default: the newest that checks)")
	before := fs.String("before", "", "restore the newest snapshot that checks taken before this time (RFC 3339, e.g. 2026-11-29T10:00:00Z)")
	to := fs.String("to", "", "new data directory to restore into (must not exist)")
	var shredded multiFlag
	fs.Var(&shredded, "shredded-keys", "the current list of erased data keys (the live directory's DIR/shredded-keys or its off-site copy); repeatable")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *repo == "" || *identity == "" || *to == "" {
		return fail(exitUsage, "restore needs --repo, --identity and --to", "phivault restore --repo PATH --identity FILE --to NEWDIR")
	}
	pick, err := snapshotPicker(*snap, *before)
	if err != nil {
		return err
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	st, err := s3.storage(context.Background(), *repo, false)
	if err != nil {
		return err
	}
	rd, err := backup.OpenReaderIn(st, ids)
	if err != nil {
		return repoError(err)
	}
	m, err := pick(rd)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := rd.Restore(ctx, m, *to); err != nil {
		return fail(exitFail, "restore failed, nothing restored: "+err.Error(), "run 'phivault backup verify --read-data' and restore another snapshot")
	}
	fmt.Fprintf(stdout, "restored snapshot %s (%s) into %s\n", m.ID, m.Created.Format("2006-01-02T15:04:05Z"), *to)
	counts, err := rebuildRestored(ctx, *to, m, stdout, stderr)
	if err != nil {
		return err
	}
	rm := *m
	rm.Counts = counts
	if err := checkRestored(ctx, *to, &rm, stdout, stderr); err != nil {
		return err
	}
	if err := reapplyErasures(ctx, *to, st, shredded, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "OK: the audit log verifies with the snapshot's root, counts match, every version decrypts and authenticates")
	return nil
}

// checkRestored opens a restored directory and checks it against the
// manifest: counts, audit tree (verified, size and root equal), and an
// integrity pass over every stored version.
func checkRestored(ctx context.Context, dir string, m *backup.Manifest, stdout, stderr io.Writer) error {
	bad := func(what string) error {
		return fail(exitFail, "the restored directory does not match the snapshot: "+what,
			"do not use "+dir+"; restore another snapshot and keep this one as evidence")
	}
	counts, err := storeCounts(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return bad(err.Error())
	}
	var diffs []string
	for k, want := range m.Counts {
		if counts[k] != want {
			diffs = append(diffs, fmt.Sprintf("%s %d, snapshot says %d", k, counts[k], want))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		return bad(strings.Join(diffs, "; "))
	}
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return err
	}
	defer n.close()
	tree, rep, err := storeAuditFacts(ctx, n.db)
	if err != nil {
		return bad("audit: " + err.Error())
	}
	if !rep.OK() {
		return bad("the audit log does not verify: " + rep.Problems[0].String())
	}
	if tree.Size != m.Audit.Size || !bytes.Equal(tree.Root, m.Audit.Root) {
		return bad(fmt.Sprintf("audit tree size %d root %x, snapshot says size %d root %x", tree.Size, tree.Root, m.Audit.Size, m.Audit.Root))
	}
	fmt.Fprintf(stdout, "audit: %d entries, root %x\n", tree.Size, tree.Root)
	crep, err := n.records.Check(ctx, 20, nil)
	if err != nil {
		return bad("integrity check: " + err.Error())
	}
	if !crep.OK() {
		return bad(fmt.Sprintf("%d integrity problems, first: %s", crep.ProblemCount, crep.Problems[0]))
	}
	fmt.Fprintf(stdout, "checked %d versions of %d resources\n", crep.Versions, crep.Resources)
	return nil
}
