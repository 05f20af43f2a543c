package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/phivault/phivault/internal/backup"
)

// snapshotPicker turns restore's --snapshot and --before into the choice
// of a manifest: the named snapshot, the newest that checks taken before
// a time, or the newest that checks. Bad flags are one-line usage errors.
func snapshotPicker(id, before string) (func(*backup.Reader) (*backup.Manifest, error), error) {
	switch {
	case id != "" && before != "":
		return nil, fail(exitUsage, "--snapshot and --before are mutually exclusive", "pass a snapshot id, or a time to restore the newest snapshot taken before it")
	case id != "":
		return func(rd *backup.Reader) (*backup.Manifest, error) {
			m, err := rd.Manifest(id)
			if err != nil {
				return nil, repoError(err)
			}
			return m, nil
		}, nil
	case before != "":
		t, err := time.Parse(time.RFC3339, before)
		if err != nil {
			return nil, fail(exitUsage, fmt.Sprintf("--before takes an RFC 3339 time, not %q", before), "e.g. --before 2026-11-29T10:00:00Z (a time zone is required: Z or +01:00)")
		}
		return func(rd *backup.Reader) (*backup.Manifest, error) { return newestBefore(rd, t) }, nil
	}
	return func(rd *backup.Reader) (*backup.Manifest, error) {
		m, err := rd.Latest()
		if err != nil {
			return nil, repoError(err)
		}
		return m, nil
	}, nil
}

// newestBefore returns the newest snapshot created strictly before t
// whose manifest decrypts and checks. Snapshots that do not check are
// passed over, as Latest does: verify reports them.
func newestBefore(rd *backup.Reader, t time.Time) (*backup.Manifest, error) {
	ids, err := rd.Snapshots()
	if err != nil {
		return nil, repoError(err)
	}
	var best *backup.Manifest
	var oldest time.Time
	for _, id := range ids {
		m, err := rd.Manifest(id)
		if err != nil {
			continue
		}
		if oldest.IsZero() || m.Created.Before(oldest) {
			oldest = m.Created
		}
		if m.Created.Before(t) && (best == nil || m.Created.After(best.Created)) {
			best = m
		}
	}
	if best == nil {
		hint := "the repository holds no snapshot that checks; run 'phivault backup verify'"
		if !oldest.IsZero() {
			hint = "the oldest snapshot that checks was taken at " + oldest.UTC().Format(time.RFC3339) + "; pass a later --before"
		}
		return nil, fail(exitFail, "no snapshot that checks was taken before "+t.UTC().Format(time.RFC3339), hint)
	}
	return best, nil
}

// runRestoreDrill restores the newest snapshot into a scratch directory,
// serves it on loopback, queries it over HTTPS, and prints one result
// line with the RTO (restore start to the first successful query) and
// PASS or FAIL. It returns nil only on PASS. The scratch directory is
// removed afterwards unless --keep.
func runRestoreDrill(args []string, stdout, stderr io.Writer) error {
	fs, live := newFlags("restore drill", "--repo PATH|s3://BUCKET/PREFIX --identity FILE [--data LIVEDIR] [--keep]", stderr)
	repo := fs.String("repo", "", "backup repository: a directory or s3://bucket/prefix")
	s3 := addS3Flags(fs, false)
	identity := fs.String("identity", "", "a recipient's age identity file")
	keep := fs.Bool("keep", false, "keep the scratch directory (its path is printed)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *repo == "" || *identity == "" {
		return fail(exitUsage, "restore drill needs --repo and --identity", "phivault restore drill --repo PATH --identity FILE [--data LIVEDIR]")
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := s3.storage(ctx, *repo, false)
	if err != nil {
		return err
	}
	scratch, err := os.MkdirTemp("", "phivault-drill-") // 0700
	if err != nil {
		return fail(exitFail, "scratch directory: "+err.Error(), "set TMPDIR to a writable directory with room for a restore")
	}
	if *keep {
		fmt.Fprintln(stdout, "scratch directory (kept):", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	d := &drill{dir: filepath.Join(scratch, "data"), stdout: stdout, stderr: stderr}
	start := time.Now()
	check, err := d.run(ctx, st, ids, start)
	res := drillResult{}
	if d.m != nil {
		res.Snapshot = d.m.ID
	}
	if err != nil {
		res.Failed = check
	}
	recordDrill(ctx, *live, res, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stdout, "drill FAIL: %s: %v (after %s)\n", check, err, time.Since(start).Round(time.Millisecond))
		return fail(exitFail, "restore drill failed at "+check, "run 'phivault backup verify --read-data' and fix the repository or take a new backup; keep this one as evidence")
	}
	fmt.Fprintf(stdout, "drill PASS: snapshot %s (%s), RTO %s, %d resources searched, audit %d entries\n",
		d.m.ID, d.m.Created.Format(time.RFC3339), d.rto.Round(time.Millisecond), d.searched, d.m.Audit.Size)
	return nil
}
