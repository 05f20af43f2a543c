package backup

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/backup/s3test"
)

// BenchmarkStorageBackupRestore backs up and restores the same 16 MiB
// file into a directory repository and into an S3 bucket with Object Lock
// (versitygw on loopback, one request per chunk), side by side in each
// iteration, and reports each one's MB/s and the S3/directory ratios.
//
//	go test -run '^$' -bench StorageBackupRestore -benchtime 3x ./internal/backup
func BenchmarkStorageBackupRestore(b *testing.B) {
	srv := s3test.Start(b)
	ctx := context.Background()
	src := filepath.Join(b.TempDir(), "phivault.db")
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte('a' + rng.IntN(16)) // compresses about 2:1, as a database does
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		b.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	kinds := []string{"dir", "s3"}
	took := map[string][2]time.Duration{} // backup, restore
	for b.Loop() {
		for _, kind := range kinds {
			var st Storage = Dir(filepath.Join(b.TempDir(), "repo"))
			if kind == "s3" {
				st, err = NewS3(ctx, S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket(b, true), Prefix: "repo",
					AccessKey: srv.AccessKey, SecretKey: Secret(srv.SecretKey), LockDays: 1}, true)
				if err != nil {
					b.Fatal(err)
				}
			}
			k, err := InitIn(st, []string{id.Recipient().String()})
			if err != nil {
				b.Fatal(err)
			}
			r, err := OpenIn(st, k)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			m, _, err := r.Backup(ctx, []Source{{Path: "phivault.db", Local: src}}, nil, AuditTree{})
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			rd, err := OpenReaderIn(st, []age.Identity{id})
			if err != nil {
				b.Fatal(err)
			}
			if err := rd.Restore(ctx, m, filepath.Join(b.TempDir(), "out")); err != nil {
				b.Fatal(err)
			}
			t := took[kind]
			t[0] += t1.Sub(t0)
			t[1] += time.Since(t1)
			took[kind] = t
		}
	}
	mb := float64(len(data)) * float64(b.N) / 1e6
	for _, kind := range kinds {
		b.ReportMetric(mb/took[kind][0].Seconds(), kind+"-backup-MB/s")
		b.ReportMetric(mb/took[kind][1].Seconds(), kind+"-restore-MB/s")
	}
	b.ReportMetric(took["dir"][0].Seconds()/took["s3"][0].Seconds(), "s3/dir-backup-speed")
	b.ReportMetric(took["dir"][1].Seconds()/took["s3"][1].Seconds(), "s3/dir-restore-speed")
}
