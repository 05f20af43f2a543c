// Package backup owns phivault's backup repository: write-once files in a
// directory or an S3 bucket (Storage) holding deduplicated, compressed chunks and snapshot
// manifests, every one of them encrypted with age (X25519) to the backup
// recipients, whose private keys are never on the server.
//
// Promises:
//   - Nothing in the repository is readable without a recipient's identity,
//     except by the holder of the repository's write key (Key), which can
//     read manifests (file names, sizes, counts) but never chunk contents.
//     File names are random (snapshots) or keyed hashes (chunks), so the
//     repository reveals the number and sizes of chunks, nothing more.
//   - Files are written once (Storage.Create) and read back as first
//     written; an existing file is never overwritten or removed by this
//     package. On S3 with Object Lock the bucket itself refuses it too.
//   - Every chunk read back is checked against its keyed id and the
//     plaintext hash in the manifest; damage is reported by snapshot, file
//     and chunk, never restored silently.
//
// The format is described in docs/backup.md.
package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/restic/chunker"
)

// Format names the repository format version.
const Format = "phivault-backup/1"

// Errors callers may match.
var (
	// ErrNoRepo means the path holds no repository.
	ErrNoRepo = errors.New("backup: no repository at this path")
	// ErrExists means a file that is written once already exists.
	ErrExists = errors.New("backup: file already exists")
	// ErrWrongKey means the write key or identity does not belong to the repository.
	ErrWrongKey = errors.New("backup: key does not belong to this repository")
	// ErrNoIdentity means none of the given identities is a recipient.
	ErrNoIdentity = errors.New("backup: none of the identities can decrypt")
	// ErrDamaged means a repository file failed a check.
	ErrDamaged = errors.New("backup: repository damaged")
)

// epoch is the modification time given to every repository file, so the
// file system does not date snapshots either.
var epoch = time.Unix(0, 0)

// Key is the repository write key, kept by the node that writes backups
// (DIR/backup-keys/<repo id>.json). It lets the node name chunks (IDKey),
// cut them (Pol) and read manifests (Server); it cannot decrypt chunks.
type Key struct {
	Repo   string      `json:"repo"`   // random repository id (hex)
	Pol    chunker.Pol `json:"pol"`    // chunker polynomial, random per repository
	IDKey  []byte      `json:"id_key"` // HMAC key of chunk ids and manifest MACs
	Server string      `json:"server"` // AGE-SECRET-KEY-1... of the manifest reader
	Recips []string    `json:"recipients"`
	server *age.X25519Identity
}

// String redacts the key.
func (k *Key) String() string { return "backup.Key{repo " + k.Repo + ", **redacted**}" }

// config is the repository's config file content, encrypted to the
// recipients and the server key.
type config struct {
	Format string `json:"format"`
	Key
}

// Repo is an open repository.
type Repo struct {
	st     Storage
	key    *Key
	recips []age.Recipient // backup recipients plus the server recipient
}

// Init creates a repository in directory dir; see InitIn.
func Init(dir string, recipients []string) (*Key, error) { return InitIn(Dir(dir), recipients) }

// InitIn creates a repository in st for the given recipients (age1...) and
// returns its write key. st must not hold a repository.
func InitIn(st Storage, recipients []string) (*Key, error) {
	if len(recipients) == 0 {
		return nil, errors.New("backup: at least one recipient is needed")
	}
	if _, err := parseRecipients(recipients); err != nil {
		return nil, err
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return nil, err
	}
	srv, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	k := &Key{Repo: randomHex(16), Pol: pol, IDKey: randomBytes(32), Server: srv.String(), Recips: recipients, server: srv}
	r := &Repo{st: st, key: k}
	if r.recips, err = k.allRecipients(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(config{Format: Format, Key: *k})
	if err != nil {
		return nil, err
	}
	sealed, err := r.seal(body)
	if err != nil {
		return nil, err
	}
	if err := r.writeOnce("config", sealed); err != nil {
		if errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("backup: %s already holds a repository: %w", st, err)
		}
		return nil, err
	}
	return k, nil
}

// Open opens the repository in directory dir; see OpenIn.
func Open(dir string, k *Key) (*Repo, error) { return OpenIn(Dir(dir), k) }

// OpenIn opens the repository in st for writing with its write key.
func OpenIn(st Storage, k *Key) (*Repo, error) {
	cfg, err := st.Get(context.Background(), "config")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoRepo
	} else if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	srv, err := age.ParseX25519Identity(k.Server)
	if err != nil {
		return nil, fmt.Errorf("backup: write key: %w", err)
	}
	k.server = srv
	got, err := readConfig(cfg, srv)
	if err != nil {
		return nil, err
	}
	if got.Repo != k.Repo || !bytes.Equal(got.IDKey, k.IDKey) {
		return nil, ErrWrongKey
	}
	r := &Repo{st: st, key: k}
	if r.recips, err = k.allRecipients(); err != nil {
		return nil, err
	}
	return r, nil
}

// ReadKey reads the key of the repository in directory dir; see ReadKeyIn.
func ReadKey(dir string, ids []age.Identity) (*Key, error) { return ReadKeyIn(Dir(dir), ids) }

// ReadKeyIn decrypts the repository's config with a recipient's identity
// and returns the write key (to give a restored node its key back).
func ReadKeyIn(st Storage, ids []age.Identity) (*Key, error) {
	cfg, err := st.Get(context.Background(), "config")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoRepo
	} else if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	c, err := readConfig(cfg, ids...)
	if err != nil {
		return nil, err
	}
	k := c.Key
	if k.server, err = age.ParseX25519Identity(k.Server); err != nil {
		return nil, fmt.Errorf("%w: config: server key: %v", ErrDamaged, err)
	}
	return &k, nil
}

func readConfig(sealed []byte, ids ...age.Identity) (*config, error) {
	body, err := open(sealed, ids)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c config
	if err := json.Unmarshal(body, &c); err != nil || c.Format != Format || len(c.IDKey) != 32 {
		return nil, fmt.Errorf("%w: config is not a %s config", ErrDamaged, Format)
	}
	return &c, nil
}

// Dir names the repository's storage (a directory path or an s3:// URL).
func (r *Repo) Dir() string { return r.st.String() }

func (k *Key) allRecipients() ([]age.Recipient, error) {
	rs, err := parseRecipients(k.Recips)
	if err != nil {
		return nil, err
	}
	if k.server == nil {
		if k.server, err = age.ParseX25519Identity(k.Server); err != nil {
			return nil, fmt.Errorf("backup: write key: %w", err)
		}
	}
	return append(rs, k.server.Recipient()), nil
}

func parseRecipients(rs []string) ([]age.Recipient, error) {
	out := make([]age.Recipient, 0, len(rs))
	for _, s := range rs {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("backup: recipient %q: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// seal encrypts body to rs (default: every recipient and the server key).
func (r *Repo) seal(body []byte, rs ...age.Recipient) ([]byte, error) {
	if len(rs) == 0 {
		rs = r.recips
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// open decrypts an age file; a failure to authenticate is ErrDamaged, no
// matching identity ErrNoIdentity.
func open(sealed []byte, ids []age.Identity) ([]byte, error) {
	rd, err := age.Decrypt(bytes.NewReader(sealed), ids...)
	var nm *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nm):
		return nil, ErrNoIdentity
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return body, nil
}

// writeOnce stores data under rel unless rel exists (ErrExists).
// Callers have no context to give: an S3 request ends on its own timeouts.
func (r *Repo) writeOnce(rel string, data []byte) error {
	return r.st.Create(context.Background(), rel, data)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
