package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Secret is a credential that redacts itself when printed or logged.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "**redacted**" }

// GoString redacts the secret.
func (Secret) GoString() string { return "**redacted**" }

// LogValue redacts the secret in log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("**redacted**") }

// MarshalText redacts the secret in JSON and other encodings.
func (Secret) MarshalText() ([]byte, error) { return []byte("**redacted**"), nil }

// Reveal returns the secret itself, for the one call that sends it.
func (s Secret) Reveal() string { return string(s) }

// Lock modes of S3 Object Lock retention.
const (
	LockCompliance = "COMPLIANCE" // no one, not even the account root, shortens or removes it
	LockGovernance = "GOVERNANCE" // removable only with s3:BypassGovernanceRetention
)

// S3Config names a repository in an S3 bucket.
type S3Config struct {
	Endpoint     string // https://host[:port] (http:// only for loopback tests and trusted networks)
	Bucket       string
	Prefix       string // names are stored under Prefix/ ("" for the bucket root)
	Region       string // "" lets the client ask the server
	AccessKey    string
	SecretKey    Secret
	SessionToken Secret
	// LockMode and LockDays set Object Lock retention on every object
	// written: for LockDays days from the write, in LockMode (default
	// COMPLIANCE). LockDays 0 relies on the bucket's default retention,
	// which NewS3 then requires for writing.
	LockMode string
	LockDays int
}

// ParseS3URL splits s3://bucket/prefix into bucket and prefix.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("backup: %q is not an s3://bucket/prefix URL", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" || (prefix != "" && !validName(prefix)) {
		return "", "", fmt.Errorf("backup: %q is not an s3://bucket/prefix URL", s)
	}
	return bucket, prefix, nil
}

// s3Storage keeps a repository in a bucket. Objects are written with
// If-None-Match: * (servers that know it refuse to replace a name) and
// with Object Lock retention, so the credentials that write them cannot
// delete or overwrite them until the retention ends. Object Lock needs
// versioning, so an attacker can still stack a new version or a delete
// marker on a name: reads therefore take the first version of each name,
// and Alterations reports the stacked ones.
type s3Storage struct {
	c              *minio.Client
	bucket, prefix string
	mode           minio.RetentionMode
	days           int

	mu  sync.Mutex
	idx map[string]s3Object // key -> first version; nil until listed
}

type s3Object struct {
	version string // "" or "null": unversioned
	size    int64
	later   int  // versions stored after the first
	deleted bool // a delete marker stands over the key
}

var (
	_ Storage          = (*s3Storage)(nil)
	_ AlterationLister = (*s3Storage)(nil)
)

// NewS3 connects to the bucket of cfg. With write, it checks that the
// bucket locks what is written: Object Lock enabled, and a retention from
// cfg.LockDays or the bucket's default; a bucket that would leave backups
// deletable by the server's credentials is refused.
func NewS3(ctx context.Context, cfg S3Config, write bool) (Storage, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%w: endpoint %q is not http(s)://host[:port]", ErrS3Config, cfg.Endpoint)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("%w: no credentials", ErrS3Config)
	}
	mode := minio.RetentionMode(strings.ToUpper(cmpOr(cfg.LockMode, LockCompliance)))
	if !mode.IsValid() {
		return nil, fmt.Errorf("%w: lock mode %q is neither COMPLIANCE nor GOVERNANCE", ErrS3Config, cfg.LockMode)
	}
	if cfg.LockDays < 0 || cfg.LockDays > 36500 {
		return nil, fmt.Errorf("%w: lock days %d out of range (0 to 36500)", ErrS3Config, cfg.LockDays)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey.Reveal(), cfg.SessionToken.Reveal()),
		Secure: u.Scheme == "https",
		Region: cfg.Region,
		// Path-style requests work with every S3 server, and with bucket
		// names that are not DNS names.
		BucketLookup: minio.BucketLookupPath,
		Transport:    &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 2 * time.Minute, MaxIdleConnsPerHost: 16},
	})
	if err != nil {
		return nil, fmt.Errorf("backup: S3 client: %w", err)
	}
	s := &s3Storage{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix, mode: mode, days: cfg.LockDays}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("backup: %s: %w", s, err)
	}
	if !ok {
		return nil, fmt.Errorf("backup: %s: no such bucket", s)
	}
	if write {
		enabled, _, validity, _, err := c.GetObjectLockConfig(ctx, cfg.Bucket)
		if err != nil || enabled != "Enabled" {
			return nil, fmt.Errorf("%w: bucket %s has no Object Lock, so the server's credentials could delete its backups (create the bucket with Object Lock enabled)", ErrNotLocked, cfg.Bucket)
		}
		if cfg.LockDays == 0 && (validity == nil || *validity == 0) {
			return nil, fmt.Errorf("%w: bucket %s has no default retention: pass a lock period in days", ErrNotLocked, cfg.Bucket)
		}
	}
	return s, nil
}

// Errors of NewS3 callers may match.
var (
	// ErrNotLocked means a bucket would not protect what is written to it.
	ErrNotLocked = errors.New("backup: S3 bucket does not lock its objects")
	// ErrS3Config means the configuration itself is wrong (before any request).
	ErrS3Config = errors.New("backup: bad S3 configuration")
)

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *s3Storage) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

func (s *s3Storage) key(name string) string { return path.Join(s.prefix, name) }

// Create puts data under name with If-None-Match: * and the retention,
// after checking that no version of name exists.
func (s *s3Storage) Create(ctx context.Context, name string, data []byte) error {
	if !validName(name) {
		return fmt.Errorf("backup: invalid repository name %q", name)
	}
	if _, err := s.first(ctx, name); err == nil {
		return ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	opt := minio.PutObjectOptions{ContentType: "application/octet-stream", SendContentMd5: true, DisableMultipart: true}
	opt.SetMatchETagExcept("*")
	if s.days > 0 {
		opt.Mode = s.mode
		opt.RetainUntilDate = time.Now().Add(time.Duration(s.days) * 24 * time.Hour).UTC()
	}
	info, err := s.c.PutObject(ctx, s.bucket, s.key(name), bytes.NewReader(data), int64(len(data)), opt)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed" {
			return ErrExists
		}
		return fmt.Errorf("backup: put %s: %w", name, err)
	}
	s.mu.Lock()
	if s.idx != nil {
		s.idx[s.key(name)] = s3Object{version: info.VersionID, size: int64(len(data))}
	}
	s.mu.Unlock()
	return nil
}

// Get reads the first version of name.
func (s *s3Storage) Get(ctx context.Context, name string) ([]byte, error) {
	o, err := s.first(ctx, name)
	if err != nil {
		return nil, err
	}
	var opt minio.GetObjectOptions
	if o.version != "" && o.version != "null" {
		opt.VersionID = o.version
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.key(name), opt)
	if err != nil {
		return nil, s.wrap(name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, s.wrap(name, err)
	}
	return b, nil
}

func (s *s3Storage) Size(ctx context.Context, name string) (int64, error) {
	o, err := s.first(ctx, name)
	return o.size, err
}

// List lists dir's names from the version listing, so a delete marker
// does not hide a name.
func (s *s3Storage) List(ctx context.Context, dir string) ([]string, error) {
	idx, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	pre := s.key(dir) + "/"
	var names []string
	for k := range idx {
		if rest, ok := strings.CutPrefix(k, pre); ok && !strings.Contains(rest, "/") {
			names = append(names, rest)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Alterations lists every name with versions or delete markers after its
// first version, from a fresh listing.
func (s *s3Storage) Alterations(ctx context.Context) ([]Alteration, error) {
	s.mu.Lock()
	s.idx = nil
	s.mu.Unlock()
	idx, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	var out []Alteration
	for k, o := range idx {
		if o.later > 0 || o.deleted {
			name := strings.TrimPrefix(strings.TrimPrefix(k, s.prefix), "/")
			out = append(out, Alteration{Name: name, Versions: o.later, Deleted: o.deleted})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// first returns the first version of name: from the listing made on
// first use, or, for a name written since, from a listing of that name.
func (s *s3Storage) first(ctx context.Context, name string) (s3Object, error) {
	idx, err := s.index(ctx)
	if err != nil {
		return s3Object{}, err
	}
	k := s.key(name)
	s.mu.Lock()
	o, ok := idx[k]
	s.mu.Unlock()
	if ok {
		return o, nil
	}
	one, err := s.list(ctx, k, false)
	if err != nil {
		return s3Object{}, err
	}
	if o, ok := one[k]; ok {
		s.mu.Lock()
		idx[k] = o
		s.mu.Unlock()
		return o, nil
	}
	return s3Object{}, fmt.Errorf("backup: %s: %w", name, fs.ErrNotExist)
}

func (s *s3Storage) index(ctx context.Context) (map[string]s3Object, error) {
	s.mu.Lock()
	idx := s.idx
	s.mu.Unlock()
	if idx != nil {
		return idx, nil
	}
	pre := ""
	if s.prefix != "" {
		pre = s.prefix + "/"
	}
	idx, err := s.list(ctx, pre, true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.idx == nil {
		s.idx = idx
	}
	idx = s.idx
	s.mu.Unlock()
	return idx, nil
}

// list lists every version under prefix. The server lists a key's
// versions newest first, so the last one that is not a delete marker is
// the first written.
func (s *s3Storage) list(ctx context.Context, prefix string, recursive bool) (map[string]s3Object, error) {
	type acc struct {
		first    *s3Object
		versions int
		deleted  bool
	}
	seen := map[string]*acc{}
	for o := range s.c.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: recursive, WithVersions: true}) {
		if o.Err != nil {
			return nil, s.wrap(prefix, o.Err)
		}
		a := seen[o.Key]
		if a == nil {
			a = &acc{}
			seen[o.Key] = a
		}
		if o.IsDeleteMarker {
			a.deleted = true
			continue
		}
		a.versions++
		a.first = &s3Object{version: o.VersionID, size: o.Size}
	}
	out := make(map[string]s3Object, len(seen))
	for k, a := range seen {
		if a.first == nil {
			continue // only delete markers: nothing of ours was there
		}
		o := *a.first
		o.later, o.deleted = a.versions-1, a.deleted
		out[k] = o
	}
	return out, nil
}

func (s *s3Storage) wrap(name string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchVersion":
		return fmt.Errorf("backup: %s: %w", name, fs.ErrNotExist)
	}
	return fmt.Errorf("backup: %s %s: %w", s, name, err)
}
