package main

// Erasures and backups. A snapshot taken before an erasure holds the
// patient's wrapped data key; a restore must destroy it again. The ids of
// destroyed keys therefore live outside the snapshots: in the node's
// DIR/shredded-keys (and its off-site copy) and in the repository's
// shredded/ directory, one empty file per key id, which every
// 'backup create' brings up to date. A restore destroys every id listed
// in the snapshot, in the repository and in the lists given with
// --shredded-keys before it reports success.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// repoShreddedDir is the repository's list of destroyed key ids.
const repoShreddedDir = "shredded"

// recordErasures brings the repository's list of destroyed key ids up to
// date with DIR/shredded-keys after a backup (in an S3 repository the
// entries are locked like the snapshots, so they cannot be removed either).
func recordErasures(ctx context.Context, data string, st backup.Storage, stdout io.Writer) error {
	added, err := syncRepoShredded(ctx, data, st)
	if err != nil {
		return fail(exitFail, "the snapshot is written, but the repository's list of erased keys could not be updated: "+err.Error(),
			"check the repository is writable and run 'phivault backup create' again")
	}
	if added > 0 {
		fmt.Fprintf(stdout, "erased data keys recorded in the repository: %d new\n", added)
	}
	return nil
}

// reapplyErasures destroys, in a restored directory, the data keys of
// every erasure known (see reapply), says how many, and reminds the
// operator of --shredded-keys when none was given.
func reapplyErasures(ctx context.Context, to string, st backup.Storage, lists []string, stdout, stderr io.Writer) error {
	again, err := reapply(ctx, to, st, lists, stderr)
	if err != nil {
		var ce *cliError
		if errors.As(err, &ce) {
			return err
		}
		return fail(exitFail, "the erasures could not be re-applied: "+err.Error(), "do not use "+to+"; run the restore again")
	}
	fmt.Fprintf(stdout, "erasures: %d data keys erased after the snapshot destroyed again\n", again)
	if len(lists) == 0 {
		fmt.Fprintf(stdout, "note: erasures made after the last 'backup create' are listed only in the live directory's %s; pass it (or its off-site copy) with --shredded-keys\n", shreddedName)
	}
	return nil
}

// syncRepoShredded records every key id of DIR/shredded-keys in the
// repository as an empty file shredded/<id>, written once (ids already
// there are left alone). It returns how many it added.
func syncRepoShredded(ctx context.Context, data string, st backup.Storage) (int, error) {
	ids, err := readShredded(data)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	have, err := st.List(ctx, repoShreddedDir)
	if err != nil {
		return 0, err
	}
	added := 0
	for _, id := range ids {
		name := id.String()
		if slices.Contains(have, name) {
			continue
		}
		err := st.Create(ctx, repoShreddedDir+"/"+name, nil)
		if errors.Is(err, backup.ErrExists) {
			continue
		}
		if err != nil {
			return added, err
		}
		added++
	}
	return added, nil
}

// readRepoShredded lists the key ids recorded in the repository.
func readRepoShredded(ctx context.Context, st backup.Storage) ([]barrier.KeyID, error) {
	names, err := st.List(ctx, repoShreddedDir)
	if err != nil {
		return nil, err
	}
	var out []barrier.KeyID
	for _, n := range names {
		b, err := hex.DecodeString(n)
		if err != nil || len(b) != barrier.KeyIDSize {
			return nil, fmt.Errorf("%s/%s: unexpected entry %q", st, repoShreddedDir, n)
		}
		out = append(out, barrier.KeyID(b))
	}
	return out, nil
}

// readShreddedFile reads a shredded-keys list (one hex key id a line):
// a data directory's, or its off-site copy.
func readShreddedFile(path string) ([]barrier.KeyID, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []barrier.KeyID
	for _, l := range strings.Fields(string(data)) {
		b, err := hex.DecodeString(l)
		if err != nil || len(b) != barrier.KeyIDSize {
			return nil, fmt.Errorf("bad line %q", l)
		}
		out = append(out, barrier.KeyID(b))
	}
	return out, nil
}

// reapply destroys in the restored directory every data key listed
// in the snapshot's shredded-keys, the repository's list and the given
// lists, adds them to the directory's shredded-keys and records the
// re-destruction in its audit log. It returns how many keys it destroyed
// that the restored store still held.
func reapply(ctx context.Context, dir string, st backup.Storage, lists []string, stderr io.Writer) (int, error) {
	seen := map[barrier.KeyID]bool{}
	var ids []barrier.KeyID
	add := func(l []barrier.KeyID) {
		for _, id := range l {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	own, err := readShredded(dir)
	if err != nil {
		return 0, fail(exitFail, "the restored shredded-keys list is damaged: "+err.Error(), "restore another snapshot")
	}
	known := map[barrier.KeyID]bool{}
	for _, id := range own {
		known[id] = true
	}
	add(own)
	fromRepo, err := readRepoShredded(ctx, st)
	if err != nil {
		return 0, fail(exitFail, "cannot read the repository's list of erased keys: "+err.Error(), "check the repository; erasures must be re-applied before the restored data is used")
	}
	add(fromRepo)
	for _, p := range lists {
		l, err := readShreddedFile(p)
		if err != nil {
			return 0, fail(exitUsage, "cannot read --shredded-keys "+p+": "+err.Error(), "give the live directory's DIR/shredded-keys or its off-site copy")
		}
		add(l)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return 0, err
	}
	defer n.close()
	destroyed := 0
	for _, id := range ids {
		found, err := n.barrier.DestroyID(ctx, id)
		if err != nil {
			return destroyed, fmt.Errorf("destroy erased key %s: %w", id, err)
		}
		if !known[id] {
			if err := appendShredded(dir, id); err != nil {
				return destroyed, err
			}
		}
		if found && !known[id] {
			destroyed++
		}
	}
	ev := &audit.Event{Time: time.Now().UTC(), Interaction: "erase", Action: "D", Outcome: audit.Success,
		OutcomeDesc: fmt.Sprintf("restore: erasures re-applied; %d data keys destroyed again, %d listed", destroyed, len(ids)),
		UserID:      fmt.Sprintf("operator:uid-%d", os.Getuid()), Roles: []string{"administrator"}, Allowed: true, Policies: []string{"operator-path"}}
	err = n.db.Update(ctx, func(tx store.Writer) error {
		_, err := tx.AppendAudit(ev.Leaf())
		return err
	})
	if err == nil {
		err = n.scrub(ctx)
	}
	return destroyed, err
}
