package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Storage holds a repository's files by slash-separated name ("config",
// "snapshots/<id>", "data/<xx>/<id>"): a directory (Dir) or an S3 bucket
// (NewS3). The repository writes each name once and never deletes, so a
// backend may, and S3 with Object Lock does, refuse anything else.
//
// Contract, for every implementation (storagetest_test.go checks it):
//   - Create stores data under name durably before it returns, unless name
//     exists: then it returns ErrExists and the stored content is unchanged.
//   - Get and Size answer for the content first stored under name; a name
//     never stored gives an error matching fs.ErrNotExist. Where the backend
//     keeps versions (S3), a later version or delete marker does not hide
//     the first version.
//   - List returns the base names of the files stored directly under dir
//     (not deeper), sorted; a missing dir is an empty list.
//   - Methods may be called from several goroutines.
type Storage interface {
	Create(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	Size(ctx context.Context, name string) (int64, error)
	List(ctx context.Context, dir string) ([]string, error)
	// String names the storage in messages: a path or s3://bucket/prefix.
	String() string
}

// Alteration is a name whose first content was later replaced, or hidden
// by a delete marker, on a backend that keeps every version.
type Alteration struct {
	Name     string
	Versions int  // versions stored after the first
	Deleted  bool // a delete marker hides the name from plain listings
}

func (a Alteration) String() string {
	s := a.Name + ":"
	if a.Versions > 0 {
		s += fmt.Sprintf(" %d later version(s)", a.Versions)
	}
	if a.Deleted {
		s += " delete marker"
	}
	return s + " (the first version is kept and is the one read)"
}

// AlterationLister is implemented by storage that keeps every version of
// a name (S3 with versioning, as Object Lock requires). Alterations lists
// what was written over or deleted after phivault's write: an attack the
// lock refused to let through, which verify reports.
type AlterationLister interface {
	Alterations(ctx context.Context) ([]Alteration, error)
}

// validName accepts clean relative slash-separated names.
func validName(name string) bool {
	return validPath(name) && !strings.Contains(name, "\\")
}

// dirStorage is a repository in a local or mounted directory. Files are
// created exclusively, fsynced and linked into place (link(2) never
// replaces a name), read-only, dated at the epoch.
type dirStorage struct{ dir string }

// Dir returns the storage of a repository in directory dir.
func Dir(dir string) Storage { return &dirStorage{dir: dir} }

var _ Storage = (*dirStorage)(nil)

func (d *dirStorage) String() string { return d.dir }

func (d *dirStorage) path(name string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("backup: invalid repository name %q", name)
	}
	return filepath.Join(d.dir, filepath.FromSlash(name)), nil
}

// Create writes data to name: a temporary file under tmp/ created
// exclusively, fsynced, then linked to its final name, which fails if the
// name exists, and the directory fsynced.
func (d *dirStorage) Create(_ context.Context, name string, data []byte) error {
	final, err := d.path(name)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(final); err == nil {
		return ErrExists
	}
	tmpDir := filepath.Join(d.dir, "tmp")
	for _, p := range []string{filepath.Dir(final), tmpDir} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	tmp := filepath.Join(tmpDir, randomHex(16))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	os.Chtimes(tmp, epoch, epoch)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return ErrExists
		}
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(filepath.Dir(final))
}

func (d *dirStorage) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// Size is the size of a regular file; anything else at name is damage.
func (d *dirStorage) Size(_ context.Context, name string) (int64, error) {
	p, err := d.path(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s is not a regular file", ErrDamaged, name)
	}
	return fi.Size(), nil
}

func (d *dirStorage) List(_ context.Context, dir string) ([]string, error) {
	p, err := d.path(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
