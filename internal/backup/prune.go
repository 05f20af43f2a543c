package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"

	"github.com/minio/minio-go/v7"
)

// Deleter is implemented by storage that can remove a name, for pruning.
// It is kept apart from Storage on purpose: the repository (Repo) and the
// server's scheduled backups only ever see a Storage, so no code path of
// the server can delete a snapshot; only 'phivault backup prune', run by
// an operator with credentials that may delete, asserts a Deleter.
//
// Contract: Delete removes name and, where the backend keeps versions,
// every version of it, so it can no longer be read. A name that does not
// exist is not an error (an interrupted prune can be run again). When the
// backend refuses (an Object Lock retention still running, an append-only
// directory, credentials without delete rights) the error matches
// ErrDeleteRefused and the name is left as it was.
type Deleter interface {
	Delete(ctx context.Context, name string) error
}

// ErrDeleteRefused means the storage refused to delete a name.
var ErrDeleteRefused = errors.New("backup: the repository refused the deletion")

var (
	_ Deleter = (*dirStorage)(nil)
	_ Deleter = (*s3Storage)(nil)
)

// Delete removes the file name. Write permission on its directory is
// needed, which an append-only repository does not give the server.
func (d *dirStorage) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	err = os.Remove(p)
	switch {
	case err == nil:
		return syncDir(path.Dir(p))
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %s: %v", ErrDeleteRefused, name, err)
	}
	return fmt.Errorf("backup: delete %s: %w", name, err)
}

// Delete removes every version and delete marker of name. A version whose
// Object Lock retention has not ended is refused by the bucket.
func (s *s3Storage) Delete(ctx context.Context, name string) error {
	if !validName(name) {
		return fmt.Errorf("backup: invalid repository name %q", name)
	}
	k := s.key(name)
	var versions []string
	for o := range s.c.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: k, WithVersions: true}) {
		if o.Err != nil {
			return s.wrap(name, o.Err)
		}
		if o.Key == k {
			versions = append(versions, o.VersionID)
		}
	}
	for _, v := range versions {
		if err := s.c.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{VersionID: v}); err != nil {
			if r := minio.ToErrorResponse(err); r.Code == "AccessDenied" || r.Code == "InvalidRequest" || r.StatusCode == 403 {
				return fmt.Errorf("%w: %s: %s (an Object Lock retention still running, or credentials without delete rights)", ErrDeleteRefused, name, r.Code)
			}
			return s.wrap(name, err)
		}
	}
	s.mu.Lock()
	if s.idx != nil {
		delete(s.idx, k)
	}
	s.mu.Unlock()
	return nil
}

// PruneReport says what a prune decided and did.
type PruneReport struct {
	Decision
	Chunks        int   // chunks referenced only by removed snapshots
	ChunkBytes    int64 // their stored size
	Deleted       int   // files deleted (manifests and chunks)
	LateSnapshots int   // snapshots written while the prune ran, whose chunks were kept
}

// Prune applies p to the repository and, unless dryRun, deletes the
// manifests of the snapshots p does not keep, then the chunks that only
// those snapshots named. Chunks no snapshot names (those of a backup still
// being written) are left alone. It refuses to delete anything when a
// manifest cannot be read and checked (run verify first), and needs
// storage that is a Deleter. Manifests go first, so a prune interrupted at
// any point leaves every kept snapshot whole; running it again finishes it.
func (r *Reader) Prune(ctx context.Context, p Retention, dryRun bool) (*PruneReport, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	del, ok := r.st.(Deleter)
	if !ok && !dryRun {
		return nil, fmt.Errorf("%w: %s cannot delete", ErrDeleteRefused, r.st)
	}
	ids, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	manifests := map[string]*Manifest{}
	var times []SnapshotTime
	for _, id := range ids {
		m, err := r.Manifest(id)
		if err != nil {
			return nil, fmt.Errorf("not pruning: %w", err)
		}
		manifests[id] = m
		times = append(times, SnapshotTime{ID: id, Created: m.Created})
	}
	rep := &PruneReport{Decision: p.Apply(times)}
	kept := map[string]bool{}
	for _, s := range rep.Keep {
		addChunks(kept, manifests[s.ID])
	}
	doomed := map[string]int64{}
	for _, s := range rep.Remove {
		for _, f := range manifests[s.ID].Files {
			for _, c := range f.Chunks {
				if !kept[c.ID] {
					doomed[c.ID] = c.Stored
				}
			}
		}
	}
	rep.Chunks = len(doomed)
	for _, n := range doomed {
		rep.ChunkBytes += n
	}
	if dryRun || len(rep.Remove) == 0 {
		return rep, nil
	}
	for _, s := range rep.Remove {
		if err := del.Delete(ctx, path.Join("snapshots", s.ID)); err != nil {
			return rep, err
		}
		rep.Deleted++
	}
	// A backup that finished meanwhile may name chunks of removed
	// snapshots (deduplication): those stay.
	now, err := r.Snapshots()
	if err != nil {
		return rep, err
	}
	for _, id := range now {
		if _, seen := manifests[id]; seen {
			continue
		}
		m, err := r.Manifest(id)
		if err != nil {
			return rep, fmt.Errorf("not deleting chunks: %w", err)
		}
		rep.LateSnapshots++
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				delete(doomed, c.ID)
			}
		}
	}
	names := make([]string, 0, len(doomed))
	for id := range doomed {
		names = append(names, chunkPath(id))
	}
	sort.Strings(names)
	for _, n := range names {
		if err := del.Delete(ctx, n); err != nil {
			return rep, err
		}
		rep.Deleted++
	}
	return rep, nil
}

func addChunks(set map[string]bool, m *Manifest) {
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			set[c.ID] = true
		}
	}
}
