package backup

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"time"
)

// Manifest is an immutable snapshot: what was backed up and the facts a
// restore must reproduce.
type Manifest struct {
	Format  string           `json:"format"`
	ID      string           `json:"id"` // also the file name under snapshots/
	Created time.Time        `json:"created"`
	Files   []File           `json:"files"`
	Counts  map[string]int64 `json:"counts,omitempty"` // e.g. versions, resources/<type>
	Audit   AuditTree        `json:"audit"`
}

// AuditTree is the audit log's Merkle tree at the snapshot.
type AuditTree struct {
	Size uint64 `json:"size"`
	Root []byte `json:"root"`
}

// File is one backed-up file, its path slash-separated and relative.
type File struct {
	Path   string      `json:"path"`
	Mode   os.FileMode `json:"mode"`
	Size   int64       `json:"size"`
	SHA256 []byte      `json:"sha256"`
	Chunks []Chunk     `json:"chunks"`
}

// Chunk is one chunk of a file: keyed id, plaintext size and SHA-256, and
// the size of the stored (compressed, encrypted) file.
type Chunk struct {
	ID     string `json:"id"`
	Size   uint32 `json:"size"`
	SHA256 []byte `json:"sha256"`
	Stored int64  `json:"stored"`
}

// Source is a file to back up: Path in the snapshot, Local on disk.
type Source struct {
	Path, Local string
}

// Stats says what a backup cost.
type Stats struct {
	Files       int
	Chunks      int   // chunks referenced
	NewChunks   int   // chunks written by this backup
	Bytes       int64 // plaintext bytes referenced
	NewBytes    int64 // plaintext bytes of the new chunks
	StoredBytes int64 // bytes written to the repository (new chunks and manifest)
}

// envelope is the sealed content of snapshots/<id>.
type envelope struct {
	Manifest json.RawMessage `json:"manifest"`
	MAC      []byte          `json:"mac"` // HMAC-SHA256(id key, "manifest" || manifest)
}

func manifestMAC(idKey, body []byte) []byte {
	m := hmac.New(sha256.New, idKey)
	m.Write([]byte("manifest\x00"))
	m.Write(body)
	return m.Sum(nil)
}

// Backup chunks every source into the repository and writes the snapshot
// manifest last, so a snapshot never names a chunk that is not stored.
// counts and tree are recorded as given. Chunk boundaries follow the newest
// earlier snapshot's where the content still matches (parent.go), so a
// file that only grew costs only its new bytes.
func (r *Repo) Backup(ctx context.Context, sources []Source, counts map[string]int64, tree AuditTree) (*Manifest, Stats, error) {
	var st Stats
	m := &Manifest{Format: Format, ID: randomHex(16), Created: time.Now().UTC().Truncate(time.Microsecond), Counts: counts, Audit: tree}
	buf := make([]byte, chunkMax)
	parents := r.parentFiles()
	for _, src := range sources {
		if !validPath(src.Path) {
			return nil, st, fmt.Errorf("backup: invalid path %q", src.Path)
		}
		f, err := os.Open(src.Local)
		if err != nil {
			return nil, st, fmt.Errorf("backup: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, st, err
		}
		file := File{Path: src.Path, Mode: fi.Mode().Perm()}
		whole := sha256.New()
		err = r.guidedChunks(ctx, f, parents[src.Path], buf, func(data []byte) error {
			whole.Write(data)
			sum := sha256.Sum256(data)
			id, added, stored, err := r.putChunk(data)
			if err != nil {
				return err
			}
			file.Chunks = append(file.Chunks, Chunk{ID: id, Size: uint32(len(data)), SHA256: sum[:], Stored: stored})
			file.Size += int64(len(data))
			st.Chunks++
			st.Bytes += int64(len(data))
			if added {
				st.NewChunks++
				st.NewBytes += int64(len(data))
				st.StoredBytes += stored
			}
			return nil
		})
		if err != nil {
			f.Close()
			return nil, st, fmt.Errorf("backup: %s: %w", src.Path, err)
		}
		f.Close()
		file.SHA256 = whole.Sum(nil)
		m.Files = append(m.Files, file)
		st.Files++
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, st, err
	}
	env, err := json.Marshal(envelope{Manifest: body, MAC: manifestMAC(r.key.IDKey, body)})
	if err != nil {
		return nil, st, err
	}
	sealed, err := r.seal(env)
	if err != nil {
		return nil, st, err
	}
	if err := r.writeOnce(path.Join("snapshots", m.ID), sealed); err != nil {
		return nil, st, err
	}
	st.StoredBytes += int64(len(sealed))
	return m, st, nil
}

// validPath accepts clean, relative, slash-separated paths only, so a
// manifest cannot make a restore write outside its directory.
func validPath(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && !path.IsAbs(p) && p != ".." &&
		!(len(p) > 2 && p[:3] == "../")
}

// decodeManifest opens a sealed snapshot file, checks its MAC (when idKey
// is known) and that it names itself id.
func decodeManifest(sealed []byte, id string, r *Reader) (*Manifest, error) {
	body, err := open(sealed, r.ids)
	if err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: manifest envelope: %v", ErrDamaged, err)
	}
	if r.key != nil && !hmac.Equal(env.MAC, manifestMAC(r.key.IDKey, env.Manifest)) {
		return nil, fmt.Errorf("%w: manifest MAC does not match (not written with this repository's key)", ErrDamaged)
	}
	var m Manifest
	if err := json.Unmarshal(env.Manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrDamaged, err)
	}
	if m.Format != Format || m.ID != id {
		return nil, fmt.Errorf("%w: manifest names snapshot %q, stored as %q", ErrDamaged, m.ID, id)
	}
	for _, f := range m.Files {
		if !validPath(f.Path) {
			return nil, fmt.Errorf("%w: manifest names an invalid path", ErrDamaged)
		}
	}
	return &m, nil
}

var errNoSnapshot = errors.New("backup: no such snapshot")
