package backup

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// threeSnapshots backs up the fixture three times, replacing half of the
// database each time, and returns the manifests oldest first.
func threeSnapshots(t *testing.T, f *fixture) []*Manifest {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var ms []*Manifest
	for i := range 3 {
		if i > 0 {
			db := bytes.Clone(f.contents["phivault.db"])
			for j := len(db) / 2; j < len(db); j++ {
				db[j] = byte('a' + rng.IntN(8))
			}
			f.write(t, "phivault.db", db)
		}
		m, _ := f.backup(t)
		ms = append(ms, m)
	}
	return ms
}

func TestPruneDirectoryRepository(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ms := threeSnapshots(t, f)
	r := f.reader(t, f.ids[0])
	before := countFiles(t, f.repo)

	dry, err := r.Prune(ctx, Retention{Hourly: 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Keep) != 1 || dry.Keep[0].ID != ms[2].ID || len(dry.Remove) != 2 || dry.Chunks == 0 || dry.Deleted != 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if got := countFiles(t, f.repo); got != before {
		t.Fatalf("dry run changed the repository: %d files, was %d", got, before)
	}

	rep, err := r.Prune(ctx, Retention{Hourly: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != 2+dry.Chunks {
		t.Fatalf("deleted %d files, want 2 manifests and %d chunks", rep.Deleted, dry.Chunks)
	}
	ids, _ := r.Snapshots()
	if len(ids) != 1 || ids[0] != ms[2].ID {
		t.Fatalf("snapshots left: %v", ids)
	}
	// Only the kept snapshot's chunks remain: nothing orphaned, nothing missing.
	kept := map[string]bool{}
	addChunks(kept, ms[2])
	chunks, _ := filepath.Glob(filepath.Join(f.repo, "data", "*", "*"))
	if len(chunks) != len(kept) {
		t.Fatalf("%d chunk files left, the kept snapshot names %d", len(chunks), len(kept))
	}
	vr, err := r.Verify(ctx, VerifyOptions{ReadData: true})
	if err != nil || !vr.OK() || vr.Good != 1 || vr.ChunksRead != len(kept) {
		t.Fatalf("verify after prune: %v %+v", err, vr)
	}
	to := filepath.Join(t.TempDir(), "restored")
	if err := r.Restore(ctx, ms[2], to); err != nil {
		t.Fatal(err)
	}
	for name, want := range f.contents {
		if b, err := os.ReadFile(filepath.Join(to, name)); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%s differs after restore (%v)", name, err)
		}
	}
	// Pruning again finds nothing to do.
	again, err := r.Prune(ctx, Retention{Hourly: 1}, false)
	if err != nil || len(again.Remove) != 0 || again.Deleted != 0 {
		t.Fatalf("second prune: %v %+v", err, again)
	}
}

// TestPruneWithTheWriteKey: the node's write key reads manifests, so it can
// decide a prune; it deletes only where the storage lets it.
func TestPruneWithTheWriteKey(t *testing.T) {
	f := newFixture(t)
	threeSnapshots(t, f)
	sid, err := f.key.ServerIdentity()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.reader(t, sid).Prune(context.Background(), Retention{Daily: 1}, true)
	if err != nil || len(rep.Keep) != 1 || len(rep.Remove) != 2 {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestPruneRefusedByAppendOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	f := newFixture(t)
	threeSnapshots(t, f)
	r := f.reader(t, f.ids[0])
	snaps := filepath.Join(f.repo, "snapshots")
	if err := os.Chmod(snaps, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(snaps, 0o700) })
	_, err := r.Prune(context.Background(), Retention{Hourly: 1}, false)
	if !errors.Is(err, ErrDeleteRefused) {
		t.Fatalf("prune in a directory the account may not change: %v", err)
	}
	ids, _ := r.Snapshots()
	if len(ids) != 3 {
		t.Fatalf("%d snapshots left, want all 3", len(ids))
	}
}

func TestPruneRefusesWithADamagedManifest(t *testing.T) {
	f := newFixture(t)
	ms := threeSnapshots(t, f)
	p := filepath.Join(f.repo, "snapshots", ms[0].ID)
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := countFiles(t, f.repo)
	_, err := f.reader(t, f.ids[0]).Prune(context.Background(), Retention{Hourly: 1}, false)
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("prune with a damaged manifest: %v", err)
	}
	if got := countFiles(t, f.repo); got != before {
		t.Fatalf("prune deleted %d files despite the damage", before-got)
	}
}
