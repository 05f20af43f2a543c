package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/phivault/phivault/internal/backup/s3test"
)

// TestEraseRestoreFromS3: a snapshot taken before an erasure, in an S3
// repository with Object Lock, restored after a later backup recorded the
// erasure in the bucket, cannot show the patient, without --shredded-keys.
func TestEraseRestoreFromS3(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t, true)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	f := &backupFixture{data: keysDir(t), repo: "s3://" + bucket + "/phivault"}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f.idFile = filepath.Join(t.TempDir(), "officer.key")
	if err := os.WriteFile(f.idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	create := []string{"backup", "create", "--data", f.data, "--repo", f.repo, "--recipient", id.Recipient().String(), "--s3-endpoint", srv.Endpoint, "--s3-lock-days", "1"}
	code, out, errs := runOut(create...)
	m := regexp.MustCompile(`snapshot (\S+):`).FindStringSubmatch(out)
	if code != exitOK || m == nil {
		t.Fatalf("backup create: exit %d %s %s", code, out, errs)
	}
	before := m[1]
	if code, _, errs := runOut("patient", "erase", "--data", f.data, "pat1", "--reason", "art. 17 request", "--yes"); code != exitOK {
		t.Fatalf("erase: exit %d %s", code, errs)
	}
	if code, out, errs := runOut(create...); code != exitOK || !strings.Contains(out, "erased data keys recorded in the repository: 1 new") {
		t.Fatalf("backup after the erasure: exit %d %s %s", code, out, errs)
	}
	// A third backup finds the id recorded already.
	if code, out, errs := runOut(create...); code != exitOK || strings.Contains(out, "erased data keys recorded") {
		t.Fatalf("third backup: exit %d %s %s", code, out, errs)
	}
	to := filepath.Join(t.TempDir(), "restored")
	code, out, errs = runOut("restore", "--repo", f.repo, "--identity", f.idFile, "--to", to, "--snapshot", before, "--s3-endpoint", srv.Endpoint)
	if code != exitOK || !strings.Contains(out, "erasures: 1 data keys erased after the snapshot destroyed again") {
		t.Fatalf("restore of the snapshot from before the erasure: exit %d %s %s", code, out, errs)
	}
	ctx := context.Background()
	n, err := openNode(ctx, to, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	for _, r := range []struct {
		typ, id string
		erased  bool
	}{{"Patient", "pat1", true}, {"Observation", "obs1", true}, {"Patient", "pat2", false}} {
		if _, err := n.records.Read(ctx, r.typ, r.id); (err != nil) != r.erased {
			t.Errorf("restored %s/%s: read error %v, erased %v", r.typ, r.id, err, r.erased)
		}
	}
}
