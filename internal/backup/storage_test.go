package backup

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/phivault/phivault/internal/backup/s3test"
)

// testStorage runs the Storage contract against st.
func testStorage(t *testing.T, st Storage) {
	ctx := context.Background()
	if _, err := st.Get(ctx, "config"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a name never stored: %v, want fs.ErrNotExist", err)
	}
	if _, err := st.Size(ctx, "data/ab/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Size of a name never stored: %v, want fs.ErrNotExist", err)
	}
	if names, err := st.List(ctx, "snapshots"); err != nil || len(names) != 0 {
		t.Fatalf("List of an empty dir: %v %v", names, err)
	}
	first := []byte("first content")
	if err := st.Create(ctx, "snapshots/b", first); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "snapshots/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "snapshots/sub/c", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "snapshots/b", []byte("second")); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over an existing name: %v, want ErrExists", err)
	}
	got, err := st.Get(ctx, "snapshots/b")
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("Get after a refused Create: %q %v, want %q", got, err, first)
	}
	if n, err := st.Size(ctx, "snapshots/b"); err != nil || n != int64(len(first)) {
		t.Fatalf("Size: %d %v", n, err)
	}
	names, err := st.List(ctx, "snapshots")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"a", "b"}, names); d != "" {
		t.Fatalf("List (-want +got):\n%s", d)
	}
	for _, bad := range []string{"../x", "/abs", "a/../../b", ""} {
		if err := st.Create(ctx, bad, nil); err == nil {
			t.Errorf("Create(%q) accepted", bad)
		}
	}
}

func TestDirStorage(t *testing.T) { testStorage(t, Dir(t.TempDir())) }

func TestS3Storage(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, true)
	st, err := NewS3(context.Background(), S3Config{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "repo",
		AccessKey: srv.AccessKey, SecretKey: Secret(srv.SecretKey), LockDays: 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	testStorage(t, st)
}

// TestS3LockedAgainstTheServerCredentials plays an attacker holding the
// credentials that wrote the repository (here the server's root account):
// deleting, overwriting and truncating a locked object and shortening its
// retention. The lock refuses what would destroy the first version; what
// it lets through (a delete marker, new versions) changes nothing that is
// read, and Alterations names it.
func TestS3LockedAgainstTheServerCredentials(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, true)
	ctx := context.Background()
	cfg := S3Config{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "repo", AccessKey: srv.AccessKey, SecretKey: Secret(srv.SecretKey), LockDays: 1}
	st, err := NewS3(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"snapshots/deleted", "snapshots/overwritten", "data/ab/truncated", "data/cd/untouched"}
	content := map[string][]byte{}
	for _, n := range names {
		content[n] = bytes.Repeat([]byte(n), 100)
		if err := st.Create(ctx, n, content[n]); err != nil {
			t.Fatal(err)
		}
	}
	c := srv.Client
	versionOf := func(key string) string {
		for o := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			if o.Key == key && !o.IsDeleteMarker {
				return o.VersionID // the newest first; called before any second version
			}
		}
		t.Fatalf("no version of %s", key)
		return ""
	}
	first := map[string]string{}
	for _, n := range names {
		first[n] = versionOf("repo/" + n)
	}
	// Destroying the first version is refused, in every way.
	for _, n := range names[:3] {
		key := "repo/" + n
		if err := c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: first[n]}); err == nil {
			t.Errorf("deleting the locked version of %s succeeded", n)
		}
		if err := c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: first[n], GovernanceBypass: true}); err == nil {
			t.Errorf("deleting the locked version of %s with governance bypass succeeded", n)
		}
		shorter := time.Now().Add(time.Minute)
		mode := minio.Governance
		if err := c.PutObjectRetention(ctx, bucket, key, minio.PutObjectRetentionOptions{VersionID: first[n], Mode: &mode, RetainUntilDate: &shorter, GovernanceBypass: true}); err == nil {
			t.Errorf("shortening the retention of %s succeeded", n)
		}
	}
	// What versioning lets through: a delete marker, new versions.
	if err := c.RemoveObject(ctx, bucket, "repo/snapshots/deleted", minio.RemoveObjectOptions{}); err != nil {
		t.Logf("delete without a version: %v", err)
	}
	for n, b := range map[string][]byte{"snapshots/overwritten": []byte("ransom note"), "data/ab/truncated": content["data/ab/truncated"][:10]} {
		if _, err := c.PutObject(ctx, bucket, "repo/"+n, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Logf("overwrite %s: %v", n, err)
		}
	}
	// A new reader (a restore on a clean machine) reads every first version.
	rd, err := NewS3(ctx, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		got, err := rd.Get(ctx, n)
		if err != nil || !bytes.Equal(got, content[n]) {
			t.Errorf("after the attack, %s reads %.30q %v", n, got, err)
		}
		if size, err := rd.Size(ctx, n); err != nil || size != int64(len(content[n])) {
			t.Errorf("after the attack, %s has size %d %v", n, size, err)
		}
	}
	if got, err := rd.List(ctx, "snapshots"); err != nil || !cmp.Equal(got, []string{"deleted", "overwritten"}) {
		t.Errorf("after the attack, snapshots lists %v %v", got, err)
	}
	alt, err := rd.(AlterationLister).Alterations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Alteration{{Name: "data/ab/truncated", Versions: 1}, {Name: "snapshots/deleted", Deleted: true}, {Name: "snapshots/overwritten", Versions: 1}}
	if d := cmp.Diff(want, alt); d != "" {
		t.Errorf("alterations (-want +got):\n%s", d)
	}
}

// TestS3RefusesAnUnlockedBucket: writing backups where the server's
// credentials could delete them is refused, unless the bucket locks.
func TestS3RefusesAnUnlockedBucket(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	cfg := S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket(t, false), AccessKey: srv.AccessKey, SecretKey: Secret(srv.SecretKey), LockDays: 1}
	if _, err := NewS3(ctx, cfg, true); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("writing to a bucket without Object Lock: %v, want ErrNotLocked", err)
	}
	if _, err := NewS3(ctx, cfg, false); err != nil {
		t.Fatalf("reading from it: %v", err)
	}
	cfg.Bucket, cfg.LockDays = srv.Bucket(t, true), 0
	if _, err := NewS3(ctx, cfg, true); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("a locked bucket without default retention and no lock days: %v, want ErrNotLocked", err)
	}
	cfg.Bucket = "no-such-bucket"
	if _, err := NewS3(ctx, cfg, false); err == nil || !strings.Contains(err.Error(), "no such bucket") {
		t.Fatalf("a missing bucket: %v", err)
	}
	cfg.SecretKey = "wrong"
	if _, err := NewS3(ctx, cfg, false); err == nil {
		t.Fatal("wrong credentials accepted")
	}
}

func TestSecretRedacts(t *testing.T) {
	s := Secret("hunter2-very-secret")
	cfg := S3Config{SecretKey: s}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", cfg, cfg, cfg, s, s, s)} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, hex.EncodeToString([]byte("hunter2"))) {
			t.Fatalf("secret printed: %s", out)
		}
	}
	b, _ := json.Marshal(cfg)
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "secret", s, "cfg", cfg)
	if strings.Contains(string(b), "hunter2") || strings.Contains(logged.String(), "hunter2") {
		t.Fatalf("secret encoded: %s %s", b, logged.String())
	}
	if s.Reveal() != "hunter2-very-secret" {
		t.Fatal("Reveal")
	}
}

// TestS3LockedWithoutVersioning: on a server that locks objects without
// keeping versions, the lock refuses outright to overwrite, truncate or
// delete a locked object, and reads are unchanged.
func TestS3LockedWithoutVersioning(t *testing.T) {
	srv := s3test.StartUnversioned(t)
	ctx := context.Background()
	bucket := srv.Bucket(t, true)
	st, err := NewS3(ctx, S3Config{Endpoint: srv.Endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: Secret(srv.SecretKey), LockDays: 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	testStorage(t, st)
	want := []byte("first content")
	c := srv.Client
	for _, b := range [][]byte{[]byte("ransom note"), nil} {
		if _, err := c.PutObject(ctx, bucket, "snapshots/b", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err == nil {
			t.Errorf("writing %d bytes over a locked object succeeded", len(b))
		}
	}
	for _, opt := range []minio.RemoveObjectOptions{{}, {GovernanceBypass: true}} {
		if err := c.RemoveObject(ctx, bucket, "snapshots/b", opt); err == nil {
			t.Errorf("deleting a locked object succeeded (%+v)", opt)
		}
	}
	if got, err := st.Get(ctx, "snapshots/b"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the attempts: %q %v", got, err)
	}
	if alt, err := st.(AlterationLister).Alterations(ctx); err != nil || len(alt) != 0 {
		t.Fatalf("alterations: %v %v", alt, err)
	}
}
