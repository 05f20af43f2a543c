package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/backup"
)

// runBackupPrune applies a retention policy to a repository. It is an
// operator's command, run with credentials that may delete (the account
// owning a directory repository, separate S3 credentials): the server's
// credentials cannot, and serve's schedule never prunes.
func runBackupPrune(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("backup prune", "--repo PATH|s3://BUCKET/PREFIX [--identity FILE | --data DIR] --keep-hourly N --keep-daily N --keep-weekly N --keep-monthly N [--dry-run]", stderr)
	repo := fs.String("repo", "", "backup repository: a directory or s3://bucket/prefix")
	s3 := addS3Flags(fs, false)
	identity := fs.String("identity", "", "a recipient's age identity file, to read the manifests; without it, the write key in --data DIR reads them")
	var p backup.Retention
	fs.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours that have one")
	fs.IntVar(&p.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days (UTC) that have one")
	fs.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N ISO weeks that have one")
	fs.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months that have one")
	dryRun := fs.Bool("dry-run", false, "say what would be kept and deleted, delete nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *repo == "" {
		return fail(exitUsage, "no repository given", "pass --repo PATH")
	}
	if err := p.Validate(); err != nil {
		return fail(exitUsage, strings.TrimPrefix(err.Error(), "backup: "), "e.g. --keep-hourly 24 --keep-daily 7 --keep-weekly 5 --keep-monthly 12")
	}
	ctx := context.Background()
	st, err := s3.storage(ctx, *repo, false)
	if err != nil {
		return err
	}
	var ids []age.Identity
	switch {
	case *identity != "":
		if ids, err = readIdentities(*identity); err != nil {
			return err
		}
	case *data != "":
		k, _ := findWriteKey(*data, st)
		if k == nil {
			return fail(exitFail, "the node "+*data+" holds no write key for "+st.String(), "pass --identity FILE")
		}
		id, err := k.ServerIdentity()
		if err != nil {
			return fail(exitFail, "the node's write key is damaged: "+err.Error(), "pass --identity FILE")
		}
		ids = []age.Identity{id}
	default:
		return fail(exitUsage, "prune needs --identity FILE or --data DIR (the node's write key) to read the manifests", "")
	}
	rd, err := backup.OpenReaderIn(st, ids)
	if err != nil {
		return repoError(err)
	}
	rep, err := rd.Prune(ctx, p, *dryRun)
	if err == nil {
		printPrune(stdout, rep, *dryRun)
	} else if rep != nil && rep.Deleted > 0 {
		fmt.Fprintf(stdout, "deleted %d files before the error (the manifests first: every kept snapshot is whole); run prune again to finish\n", rep.Deleted)
	}
	switch {
	case errors.Is(err, backup.ErrDeleteRefused):
		return fail(exitFail, "the repository refused the deletion: "+strings.TrimPrefix(err.Error(), "backup: the repository refused the deletion: "),
			"prune with credentials that may delete (see docs/backup.md, Schedules and retention); on S3 with Object Lock, snapshots can be pruned only once their retention has ended")
	case errors.Is(err, backup.ErrDamaged), errors.Is(err, backup.ErrNoSnapshot):
		return fail(exitFail, err.Error(), "nothing was deleted; run 'phivault backup verify' and deal with the damage first")
	case err != nil:
		return repoError(err)
	}
	return nil
}

func printPrune(w io.Writer, rep *backup.PruneReport, dryRun bool) {
	for _, s := range rep.Keep {
		fmt.Fprintf(w, "keep   %s %s (%s)\n", s.ID, s.Created.UTC().Format(time.RFC3339), strings.Join(rep.Reasons[s.ID], ", "))
	}
	verb := "remove"
	if dryRun {
		verb = "would remove"
	}
	for _, s := range rep.Remove {
		fmt.Fprintf(w, "%s %s %s\n", verb, s.ID, s.Created.UTC().Format(time.RFC3339))
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: %d snapshots kept; %d snapshots and %d chunks (%d bytes stored) would be deleted\n", len(rep.Keep), len(rep.Remove), rep.Chunks, rep.ChunkBytes)
		return
	}
	fmt.Fprintf(w, "%d snapshots kept, %d removed; %d files deleted (%d chunks, %d bytes stored)", len(rep.Keep), len(rep.Remove), rep.Deleted, rep.Chunks, rep.ChunkBytes)
	if rep.LateSnapshots > 0 {
		fmt.Fprintf(w, "; %d snapshots written meanwhile keep their chunks", rep.LateSnapshots)
	}
	fmt.Fprintln(w)
}
