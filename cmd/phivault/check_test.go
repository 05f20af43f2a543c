package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/synth"
)

// runCLI runs the CLI in process and returns its exit code and output.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// loadedDir returns a data directory holding a synthetic population of
// the given size, loaded through the normal import path.
func loadedDir(t *testing.T, patients int) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadDemo(dir, synth.Options{Seed: 7, Patients: patients}, io.Discard); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckCleanStore(t *testing.T) {
	dir := loadedDir(t, 3)
	code, out, errOut := runCLI("check", "--data", dir)
	if code != exitOK || !strings.Contains(out, "ok:") {
		t.Fatalf("check of a clean store: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "checked ") || strings.Contains(out, "checked 0 versions") {
		t.Errorf("check did not report what it read: %s", out)
	}
}

// TestCheckFindsTampering writes versions through the backend behind the
// barrier's back: a sealed body moved from another resource (fails
// authentication), a correctly sealed body that claims another version,
// and a gap in the version numbers. The check must name each one by
// type/id/version and exit 1, and never print resource content.
func TestCheckFindsTampering(t *testing.T) {
	dir := loadedDir(t, 2)
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var pats, orgs []store.Version
	err = n.db.View(ctx, func(r store.Reader) error {
		vs, err := r.History(store.HistoryQuery{Type: "Patient"})
		pats = vs
		if err != nil {
			return err
		}
		orgs, err = r.History(store.HistoryQuery{Type: "Organization"})
		return err
	})
	if err != nil || len(pats) < 2 || len(orgs) < 1 {
		t.Fatalf("history: %v (%d patients, %d organizations)", err, len(pats), len(orgs))
	}
	moved, forged := pats[0], pats[1]
	// A body sealed for another resource, stored as the next version.
	swap := store.Version{Type: moved.Type, ID: moved.ID, VID: moved.VID + 1, Updated: moved.Updated, Body: orgs[0].Body}
	// A properly sealed body whose meta.versionId lies.
	vid := forged.VID + 1
	plain := append([]byte{0}, `{"resourceType":"Patient","id":"`+forged.ID+`","meta":{"versionId":"99","lastUpdated":"2020-01-01T00:00:00Z"}}`...)
	sealed, err := n.barrier.Seal(ctx, "tenant/"+tenant, barrier.Context(tenant, "Patient", forged.ID, strconv.FormatInt(vid, 10)), plain)
	if err != nil {
		t.Fatal(err)
	}
	lie := store.Version{Type: "Patient", ID: forged.ID, VID: vid, Updated: forged.Updated, Body: sealed}
	err = n.db.Update(ctx, func(w store.Writer) error {
		for _, v := range []store.Version{swap, lie} {
			if _, err := w.Put(v, nil); err != nil {
				return err
			}
		}
		return nil
	})
	n.close()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI("check", "--data", dir)
	if code != exitFail {
		t.Fatalf("check of a tampered store: exit %d, want %d\n%s%s", code, exitFail, out, errOut)
	}
	for _, want := range []string{
		"Patient/" + moved.ID + "/_history/" + strconv.FormatInt(swap.VID, 10) + ": does not decrypt and authenticate",
		"Patient/" + forged.ID + "/_history/" + strconv.FormatInt(vid, 10) + ": the body's meta.versionId",
		"integrity check failed: 2 problems",
		"hint:",
	} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("check output lacks %q:\n%s%s", want, out, errOut)
		}
	}
	if strings.Contains(out+errOut, "lastUpdated") || strings.Contains(out+errOut, "{") {
		t.Errorf("check output quotes content:\n%s%s", out, errOut)
	}
}

func TestCheckRefusesALockedDirectory(t *testing.T) {
	dir := loadedDir(t, 1)
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	code, out, errOut := runCLI("check", "--data", dir)
	if code != exitFail || !strings.Contains(errOut, "running server") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("check of a locked directory: exit %d\n%s%s", code, out, errOut)
	}
}
