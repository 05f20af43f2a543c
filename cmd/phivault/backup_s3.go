package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"strings"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/phivault/phivault/internal/backup"
)

// s3Flags are the flags of a repository in an S3 bucket (--repo
// s3://bucket/prefix). Credentials come from --s3-credentials (an AWS
// shared credentials file) or the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), never from a flag.
type s3Flags struct {
	endpoint, region, credsFile, lockMode *string
	lockDays                              *int
}

func addS3Flags(fs *flag.FlagSet, write bool) *s3Flags {
	f := &s3Flags{
		endpoint:  fs.String("s3-endpoint", "https://s3.amazonaws.com", "with --repo s3://..., the S3 server's URL"),
		region:    fs.String("s3-region", "", "with --repo s3://..., the bucket's region (default: $AWS_REGION, else asked of the server)"),
		credsFile: fs.String("s3-credentials", "", "with --repo s3://..., an AWS shared credentials file ([$AWS_PROFILE or default] profile); default: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment"),
	}
	if write {
		f.lockDays = fs.Int("s3-lock-days", 0, "with --repo s3://..., lock every object written for this many days (Object Lock retention); 0: the bucket's default retention, which must then exist")
		f.lockMode = fs.String("s3-lock-mode", backup.LockCompliance, "with --s3-lock-days, COMPLIANCE (no one can shorten it) or GOVERNANCE")
	}
	return f
}

// isS3Repo reports whether a --repo value names a bucket.
func isS3Repo(repo string) bool { return strings.HasPrefix(repo, "s3://") }

// storage opens the repository storage named by repo: a directory, or a
// bucket for s3://bucket/prefix. write requires a bucket that locks what
// is written.
func (f *s3Flags) storage(ctx context.Context, repo string, write bool) (backup.Storage, error) {
	if !isS3Repo(repo) {
		return backup.Dir(repo), nil
	}
	bucket, prefix, err := backup.ParseS3URL(repo)
	if err != nil {
		return nil, fail(exitUsage, err.Error(), "--repo s3://BUCKET/PREFIX")
	}
	cfg := backup.S3Config{Endpoint: *f.endpoint, Bucket: bucket, Prefix: prefix, Region: *f.region}
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_REGION")
	}
	if f.lockDays != nil {
		cfg.LockDays, cfg.LockMode = *f.lockDays, *f.lockMode
	}
	var v credentials.Value
	if *f.credsFile != "" {
		if _, err := os.Stat(*f.credsFile); err != nil {
			return nil, fail(exitUsage, "cannot read the S3 credentials file: "+err.Error(), "--s3-credentials takes an AWS shared credentials file")
		}
		v, err = credentials.NewFileAWSCredentials(*f.credsFile, os.Getenv("AWS_PROFILE")).GetWithContext(nil)
		if err != nil {
			return nil, fail(exitUsage, "the S3 credentials file holds no usable profile", "it needs aws_access_key_id and aws_secret_access_key under [default] (or [$AWS_PROFILE])")
		}
	} else {
		v = credentials.Value{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	}
	if v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return nil, fail(exitUsage, "no S3 credentials for "+repo, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --s3-credentials FILE")
	}
	cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = v.AccessKeyID, backup.Secret(v.SecretAccessKey), backup.Secret(v.SessionToken)
	st, err := backup.NewS3(ctx, cfg, write)
	switch {
	case errors.Is(err, backup.ErrS3Config):
		return nil, fail(exitUsage, err.Error(), "--s3-endpoint https://HOST[:PORT], --s3-lock-mode COMPLIANCE or GOVERNANCE, --s3-lock-days 1 to 36500")
	case errors.Is(err, backup.ErrNotLocked):
		return nil, fail(exitUsage, err.Error(), "create the bucket with Object Lock (see docs/backup.md) and pass --s3-lock-days N")
	case err != nil:
		return nil, fail(exitFail, "cannot open "+repo+": "+err.Error(), "check --s3-endpoint, the credentials and the bucket name")
	}
	return st, nil
}
