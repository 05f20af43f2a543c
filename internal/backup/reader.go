package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"filippo.io/age"
)

// ErrNoSnapshot means the repository holds no snapshot with that id (or none at all).
var ErrNoSnapshot = errNoSnapshot

// Reader reads a repository with identities: a backup recipient's (reads
// everything) or the write key's server identity (reads the config and
// manifests, not chunks).
type Reader struct {
	st  Storage
	ids []age.Identity
	key *Key // from the config: the id key checks chunk ids and manifest MACs
}

// OpenReader opens the repository in directory dir; see OpenReaderIn.
func OpenReader(dir string, ids []age.Identity) (*Reader, error) { return OpenReaderIn(Dir(dir), ids) }

// OpenReaderIn decrypts the config of the repository in st with ids.
func OpenReaderIn(st Storage, ids []age.Identity) (*Reader, error) {
	k, err := ReadKeyIn(st, ids)
	if err != nil {
		return nil, err
	}
	return &Reader{st: st, ids: ids, key: k}, nil
}

// ServerIdentity returns the identity of k that reads manifests.
func (k *Key) ServerIdentity() (age.Identity, error) {
	return age.ParseX25519Identity(k.Server)
}

// Snapshots lists the snapshot ids in the repository, sorted.
func (r *Reader) Snapshots() ([]string, error) {
	return r.st.List(context.Background(), "snapshots")
}

// Manifest reads and checks snapshot id.
func (r *Reader) Manifest(id string) (*Manifest, error) {
	if len(id) != 32 || !validHex(id) {
		return nil, fmt.Errorf("%w: %q", ErrNoSnapshot, id)
	}
	sealed, err := r.st.Get(context.Background(), path.Join("snapshots", id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoSnapshot, id)
	} else if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m, err := decodeManifest(sealed, id, r)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return m, nil
}

// Latest returns the newest snapshot whose manifest decrypts and checks.
func (r *Reader) Latest() (*Manifest, error) {
	ids, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	var best *Manifest
	for _, id := range ids {
		m, err := r.Manifest(id)
		if err != nil {
			continue // verify reports it; restore only needs a good one
		}
		if best == nil || m.Created.After(best.Created) {
			best = m
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w in %s that decrypts and checks", ErrNoSnapshot, r.st)
	}
	return best, nil
}

// Restore writes every file of m under to, which must not exist. Every
// chunk is checked (size, SHA-256, keyed id) and every file (size,
// SHA-256) before Restore returns nil; on any error the files written so
// far are removed, so a failed restore leaves no partial directory.
func (r *Reader) Restore(ctx context.Context, m *Manifest, to string) (err error) {
	if err := os.Mkdir(to, 0o700); err != nil {
		return fmt.Errorf("backup: restore target: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(to)
		}
	}()
	for _, f := range m.Files {
		if err := r.restoreFile(ctx, m, f, to); err != nil {
			return err
		}
	}
	return syncDir(to)
}

func (r *Reader) restoreFile(ctx context.Context, m *Manifest, f File, to string) error {
	dst := filepath.Join(to, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer out.Close()
	whole := sha256.New()
	var size int64
	for i, c := range f.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		plain, err := readChunk(ctx, r.st, r.ids, r.key.IDKey, c)
		if err != nil {
			return &DamageError{Snapshot: m.ID, File: f.Path, Chunk: i, ChunkID: c.ID, Err: err}
		}
		whole.Write(plain)
		size += int64(len(plain))
		if _, err := out.Write(plain); err != nil {
			return err
		}
	}
	if size != f.Size || !bytes.Equal(whole.Sum(nil), f.SHA256) {
		return &DamageError{Snapshot: m.ID, File: f.Path, Chunk: -1, Err: fmt.Errorf("%w: restored file does not match the manifest", ErrDamaged)}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, f.Mode&0o700)
}

// DamageError names what is damaged: snapshot, file and chunk.
type DamageError struct {
	Snapshot, File string
	Chunk          int // index in the file, -1 for the whole file or manifest
	ChunkID        string
	Err            error
}

func (e *DamageError) Error() string {
	s := "snapshot " + e.Snapshot
	if e.File != "" {
		s += ", file " + e.File
	}
	if e.Chunk >= 0 {
		s += fmt.Sprintf(", chunk %d (%s)", e.Chunk, shortID(e.ChunkID))
	}
	return s + ": " + e.Err.Error()
}

func (e *DamageError) Unwrap() error { return e.Err }

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func validHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
