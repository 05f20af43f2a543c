package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/phivault/phivault/internal/backup/s3test"
)

// encryptDataDir plays ransomware on a data directory: every file is
// replaced by random bytes of its size.
func encryptDataDir(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		junk := make([]byte, fi.Size())
		rand.Read(junk)
		n++
		return os.WriteFile(p, junk, 0o600)
	})
	if err != nil || n == 0 {
		t.Fatalf("ransomware: %d files, %v", n, err)
	}
	if code, _, _ := runCLI("check", "--data", dir); code == exitOK {
		t.Fatal("the encrypted data directory still checks")
	}
}

// TestRansomwareS3 is acceptance 4 on S3: backups go to a bucket with
// Object Lock (COMPLIANCE); an attacker holding the server's own
// credentials (the gateway's root account here) encrypts the data
// directory and tries to delete, overwrite and truncate every object of
// the repository. Permanent deletion and shortened retention are refused;
// the new versions and delete markers the bucket accepts are reported by
// verify and do not touch what restore reads; the restore is identical to
// the data before the attack.
func TestRansomwareS3(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, true)
	f := newBackupFixture(t, 3)
	f.repo = "s3://" + bucket + "/phivault"
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	s3args := []string{"--s3-endpoint", srv.Endpoint}
	create := append([]string{"backup", "create", "--data", f.data, "--repo", f.repo, "--recipient", f.recipient, "--s3-lock-days", "1"}, s3args...)
	for i := range 2 {
		code, out, errOut := runCLI(create...)
		if code != exitOK || !strings.Contains(out, "snapshot ") {
			t.Fatalf("backup create #%d to S3: exit %d\n%s%s", i+1, code, out, errOut)
		}
	}
	wantV, wantL := everything(t, f.data)
	// Before the attack the node's write key checks the bucket's manifests.
	if code, out, errOut := runCLI(append([]string{"backup", "verify", "--repo", f.repo, "--data", f.data}, s3args...)...); code != exitOK || !strings.Contains(out, "snapshots: 2 (2 good)") {
		t.Fatalf("verify with the write key: exit %d\n%s%s", code, out, errOut)
	}

	// The attack, with the credentials the server writes backups with.
	encryptDataDir(t, f.data)
	ctx := context.Background()
	c := srv.Client
	type object struct{ key, version string }
	var objs []object
	for o := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		objs = append(objs, object{o.Key, o.VersionID})
	}
	if len(objs) < 10 {
		t.Fatalf("only %d objects in the bucket", len(objs))
	}
	past := time.Now().Add(time.Second)
	gov := minio.Governance
	refused := 0
	for i, o := range objs {
		delErr := c.RemoveObject(ctx, bucket, o.key, minio.RemoveObjectOptions{VersionID: o.version, GovernanceBypass: true})
		retErr := c.PutObjectRetention(ctx, bucket, o.key, minio.PutObjectRetentionOptions{VersionID: o.version, Mode: &gov, RetainUntilDate: &past, GovernanceBypass: true})
		if delErr == nil || retErr == nil {
			t.Errorf("%s: the locked version was deleted (%v) or its retention shortened (%v)", o.key, delErr, retErr)
			continue
		}
		refused++
		switch i % 3 {
		case 0: // overwrite
			note := []byte("your backups are encrypted, pay to restore")
			c.PutObject(ctx, bucket, o.key, bytes.NewReader(note), int64(len(note)), minio.PutObjectOptions{})
		case 1: // truncate
			c.PutObject(ctx, bucket, o.key, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
		case 2: // delete (a delete marker)
			c.RemoveObject(ctx, bucket, o.key, minio.RemoveObjectOptions{})
		}
	}
	t.Logf("%d objects: permanent deletion and retention change refused for %d", len(objs), refused)

	// Verify, from a clean machine with an officer's identity, reads every
	// chunk, finds no damage and names every altered object.
	code, out, _ := runCLI(append([]string{"backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data"}, s3args...)...)
	if code != exitFail || strings.Contains(out, "DAMAGED") || !strings.Contains(out, "snapshots: 2 (2 good)") ||
		strings.Count(out, "ALTERED ") != len(objs) {
		t.Fatalf("verify after the attack: exit %d, want %d ALTERED lines and no damage:\n%.3000s", code, len(objs), out)
	}
	to := filepath.Join(t.TempDir(), "restored")
	code, out, errOut := runCLI(append([]string{"restore", "--repo", f.repo, "--identity", f.idFile, "--to", to}, s3args...)...)
	if code != exitOK || !strings.Contains(out, "OK:") {
		t.Fatalf("restore after the attack: exit %d\n%s%s", code, out, errOut)
	}
	gotV, gotL := everything(t, to)
	if d := cmp.Diff(wantV, gotV); d != "" {
		t.Fatalf("restored versions differ (-want +got):\n%.2000s", d)
	}
	if !cmp.Equal(wantL, gotL) {
		t.Fatal("restored audit leaves differ")
	}
}

// TestRansomwareDirectoryRepo is acceptance 4 on a directory repository,
// which is only as append-only as its file system permissions: the
// attacker with the server's account encrypts the data directory, deletes
// one chunk, truncates another and overwrites the newest manifest. Verify
// names each; restore refuses the damaged data and leaves nothing. (A
// repository that must survive this needs S3 Object Lock: see
// TestRansomwareS3 and docs/backup.md.)
func TestRansomwareDirectoryRepo(t *testing.T) {
	f := newBackupFixture(t, 3)
	f.create(t)
	older, err := readerFor(t, f).Latest()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // snapshot times have one-second resolution
	f.create(t)
	newer, err := readerFor(t, f).Latest()
	if err != nil || newer.ID == older.ID {
		t.Fatalf("second snapshot: %v", err)
	}
	encryptDataDir(t, f.data)
	// Two distinct chunks of the older snapshot, the store's first: one
	// deleted, one truncated.
	type ref struct {
		path string
		i    int
		id   string
	}
	var refs []ref
	for _, fl := range older.Files {
		for i, c := range fl.Chunks {
			if len(refs) < 2 && (len(refs) == 0 || refs[0].id != c.ID) {
				refs = append(refs, ref{fl.Path, i, c.ID})
			}
		}
	}
	if len(refs) < 2 {
		t.Fatalf("the snapshot has %d distinct chunks", len(refs))
	}
	chunk := func(r ref) string { return filepath.Join(f.repo, "data", r.id[:2], r.id) }
	if err := os.Remove(chunk(refs[0])); err != nil { // delete
		t.Fatal(err)
	}
	if err := os.Chmod(chunk(refs[1]), 0o600); err != nil { // truncate
		t.Fatal(err)
	}
	if err := os.Truncate(chunk(refs[1]), 10); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(f.repo, "snapshots", newer.ID)
	if err := os.Chmod(manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, []byte("your backups are encrypted"), 0o600); err != nil { // overwrite
		t.Fatal(err)
	}
	code, out, _ := runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile)
	for _, want := range []string{
		"DAMAGED snapshot " + newer.ID + ": ",
		fmt.Sprintf("DAMAGED snapshot %s, file %s, chunk %d (%s): backup: repository damaged: chunk missing", older.ID, refs[0].path, refs[0].i, refs[0].id[:16]),
		fmt.Sprintf("DAMAGED snapshot %s, file %s, chunk %d (%s): backup: repository damaged: chunk is 10 bytes", older.ID, refs[1].path, refs[1].i, refs[1].id[:16]),
	} {
		if code != exitFail || !strings.Contains(out, want) {
			t.Errorf("verify after the attack: exit %d, want %q in\n%s", code, want, out)
		}
	}
	for _, snap := range []string{newer.ID, older.ID} {
		to := filepath.Join(t.TempDir(), "restored")
		code, _, errOut := runCLI("restore", "--repo", f.repo, "--identity", f.idFile, "--to", to, "--snapshot", snap)
		if code == exitOK {
			t.Fatalf("restore of damaged snapshot %s succeeded", snap)
		}
		if _, err := os.Stat(to); !os.IsNotExist(err) {
			t.Fatalf("a refused restore left files (%s)", errOut)
		}
	}
}
