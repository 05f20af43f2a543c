package backup

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"filippo.io/age"
)

// BenchmarkPruneVsBackup measures, in each iteration and in a directory
// repository, five backups of a 3 MiB file that changes by a quarter
// between them, then a prune to the newest snapshot (four manifests and
// the chunks only they name deleted), and reports the prune's time as a
// ratio of one backup's, and a verify's (manifests and chunk sizes) as a
// ratio of the prune's: what retention costs next to the work it follows.
//
//	go test -run '^$' -bench PruneVsBackup -benchtime 3x ./internal/backup
func BenchmarkPruneVsBackup(b *testing.B) {
	ctx := context.Background()
	var backupT, pruneT, verifyT time.Duration
	var deleted int
	for b.Loop() {
		b.StopTimer()
		repo, src, id := b.TempDir()+"/repo", b.TempDir()+"/phivault.db", benchIdentity(b)
		k, err := Init(repo, []string{id.Recipient().String()})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		db := make([]byte, 3<<20)
		for i := range db {
			db[i] = byte('a' + rng.IntN(8))
		}
		b.StartTimer()
		start := time.Now()
		for i := range 5 {
			if i > 0 {
				off := rng.IntN(len(db) * 3 / 4)
				for j := off; j < off+len(db)/4; j++ {
					db[j] = byte('a' + rng.IntN(8))
				}
			}
			if err := os.WriteFile(src, db, 0o600); err != nil {
				b.Fatal(err)
			}
			w, err := Open(repo, k)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := w.Backup(ctx, []Source{{Path: "phivault.db", Local: src}}, nil, AuditTree{}); err != nil {
				b.Fatal(err)
			}
		}
		backupT += time.Since(start) / 5
		r, err := OpenReader(repo, []age.Identity{id})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		rep, err := r.Prune(ctx, Retention{Hourly: 1}, false)
		if err != nil || len(rep.Remove) != 4 {
			b.Fatalf("prune: %v %+v", err, rep)
		}
		pruneT += time.Since(start)
		deleted += rep.Deleted
		start = time.Now()
		if vr, err := r.Verify(ctx, VerifyOptions{}); err != nil || !vr.OK() {
			b.Fatalf("verify: %v %+v", err, vr)
		}
		verifyT += time.Since(start)
	}
	b.ReportMetric(float64(pruneT)/float64(backupT), "prune/backup")
	b.ReportMetric(float64(verifyT)/float64(pruneT), "verify/prune")
	b.ReportMetric(float64(deleted)/float64(b.N), "files-deleted/op")
}

func benchIdentity(b *testing.B) *age.X25519Identity {
	b.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	return id
}
