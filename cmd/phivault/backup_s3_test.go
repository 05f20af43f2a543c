package main

import (
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/phivault/phivault/internal/backup/s3test"
)

// TestBackupS3CLIErrors: each mistake with an S3 repository is a one-line
// error with a hint, nothing is written, and no secret is echoed.
func TestBackupS3CLIErrors(t *testing.T) {
	srv := s3test.Start(t)
	f := newBackupFixture(t, 1)
	locked, unlocked := srv.Bucket(t, true), srv.Bucket(t, false)
	create := func(repo string, extra ...string) (int, string) {
		args := append([]string{"backup", "create", "--data", f.data, "--repo", repo, "--recipient", f.recipient, "--s3-endpoint", srv.Endpoint}, extra...)
		code, out, errOut := runCLI(args...)
		return code, out + errOut
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if code, out := create("s3://" + locked + "/p"); code != exitUsage || !strings.Contains(out, "no S3 credentials") {
		t.Errorf("without credentials: %d %s", code, out)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	tests := []struct {
		name string
		repo string
		args []string
		code int
		want string
	}{
		{"bucket without Object Lock", "s3://" + unlocked + "/p", []string{"--s3-lock-days", "7"}, exitUsage, "has no Object Lock"},
		{"no retention at all", "s3://" + locked + "/p", nil, exitUsage, "no default retention"},
		{"bad lock mode", "s3://" + locked + "/p", []string{"--s3-lock-days", "7", "--s3-lock-mode", "forever"}, exitUsage, "neither COMPLIANCE nor GOVERNANCE"},
		{"negative lock days", "s3://" + locked + "/p", []string{"--s3-lock-days", "-1"}, exitUsage, "out of range"},
		{"no bucket in the URL", "s3://", []string{"--s3-lock-days", "7"}, exitUsage, "not an s3://bucket/prefix URL"},
		{"missing bucket", "s3://nosuchbucket/p", []string{"--s3-lock-days", "7"}, exitFail, "no such bucket"},
		{"bad endpoint", "s3://" + locked + "/p", []string{"--s3-lock-days", "7", "--s3-endpoint", "ftp://x"}, exitUsage, "not http(s)://host[:port]"},
	}
	for _, tc := range tests {
		code, out := create(tc.repo, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) || (tc.code == exitUsage && !strings.Contains(out, "hint")) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s", tc.name, code, tc.code, tc.want, out)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey+"-wrong")
	code, out := create("s3://"+locked+"/p", "--s3-lock-days", "7")
	if code != exitFail || strings.Contains(out, srv.SecretKey) {
		t.Errorf("wrong secret: exit %d:\n%s", code, out)
	}
	// Nothing was written by any of these.
	n := 0
	for o := range srv.Client.ListObjectsIter(t.Context(), locked, listAll) {
		if o.Err == nil {
			n++
		}
	}
	if n != 0 {
		t.Errorf("%d objects written by refused commands", n)
	}
}

var listAll = minio.ListObjectsOptions{Recursive: true, WithVersions: true}
