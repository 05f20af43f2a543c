// Package keys holds phivault's key-encryption-key (KEK) providers. A
// provider wraps and unwraps data keys (barrier.KEK) and never hands its KEK
// out. The file provider keeps the KEK in a local key file, sealed by a
// passphrase through Argon2id, or unsealed for development only.
package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"

	"github.com/phivault/phivault/internal/barrier"
)

// Errors of the file provider.
var (
	ErrWrongPassphrase = errors.New("keys: wrong passphrase or damaged key file")
	ErrCorrupt         = errors.New("keys: key file is corrupt")
	ErrNeedPassphrase  = errors.New("keys: key file is sealed by a passphrase")
	ErrUnknownKEK      = errors.New("keys: data key was wrapped by a KEK this provider does not hold")
	ErrNeedShares      = errors.New("keys: key file is protected by Shamir shares")
)

// Secret is key material or a passphrase. It prints as **redacted**.
type Secret []byte

func (Secret) String() string                  { return "**redacted**" }
func (Secret) GoString() string                { return "**redacted**" }
func (Secret) MarshalJSON() ([]byte, error)    { return []byte(`"**redacted**"`), nil }
func (s Secret) Format(f fmt.State, verb rune) { f.Write([]byte("**redacted**")) }

// LogValue redacts a Secret in log/slog, whose text handler would otherwise
// print any byte slice as it is.
func (Secret) LogValue() slog.Value { return slog.StringValue("**redacted**") }

const fileFormat = "phivault-kek-file/1"

// Argon2id parameters for sealing the key file (RFC 9106's second
// recommended option; above OWASP's minimum).
var defaultKDF = kdf{Alg: "argon2id", Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

type kdf struct {
	Alg       string `json:"alg"`
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// keyFile is the on-disk form. Each KEK version is stored sealed by the
// passphrase-derived key (or in the clear when Protection is "none").
type keyFile struct {
	Format     string       `json:"format"`
	ID         string       `json:"id"`
	Protection string       `json:"protection"` // "passphrase", "shamir" or "none"
	KDF        *kdf         `json:"kdf,omitempty"`
	Shamir     *shamirInfo  `json:"shamir,omitempty"`
	Versions   []keyVersion `json:"versions"`
}

type keyVersion struct {
	Version int    `json:"version"`
	Key     []byte `json:"key"` // sealed KEK (or raw, unprotected)
}

// shamirInfo says how the unseal key of a "shamir" file was split. The
// versions are sealed by AES-256-GCM under that random 32-byte key.
type shamirInfo struct {
	Shares    int `json:"shares"`
	Threshold int `json:"threshold"`
}

// File is the file KEK provider. It is safe for concurrent use.
type File struct {
	path string
	id   string

	mu       sync.RWMutex
	versions map[int]cipher.AEAD
	current  int
	// protect seals the versions in the file (nil for "none"); kept so
	// that rotation can add a version without asking for the passphrase
	// or shares again. It goes with the File when the server seals.
	protect cipher.AEAD
	file    *keyFile
}

var _ barrier.KEK = (*File)(nil)

// CreateFile writes a new key file at path (mode 0600, never overwriting)
// holding a fresh random KEK. An empty passphrase creates an unprotected
// development key.
func CreateFile(path string, passphrase Secret) error {
	kek := make([]byte, 32)
	rand.Read(kek)
	defer clear(kek)
	idb := make([]byte, 8)
	rand.Read(idb)
	f := keyFile{Format: fileFormat, ID: hex.EncodeToString(idb), Protection: "none"}
	v := keyVersion{Version: 1, Key: append([]byte(nil), kek...)}
	if len(passphrase) > 0 {
		k := defaultKDF
		k.Salt = make([]byte, 16)
		rand.Read(k.Salt)
		f.Protection, f.KDF = "passphrase", &k
		aead := k.aead(passphrase)
		nonce := make([]byte, aead.NonceSize())
		rand.Read(nonce)
		v.Key = aead.Seal(nonce, nonce, kek, []byte(f.ID+":1"))
	}
	f.Versions = []keyVersion{v}
	data, _ := json.MarshalIndent(f, "", "  ")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.Write(append(data, '\n')); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (k *kdf) aead(passphrase Secret) cipher.AEAD {
	key := argon2.IDKey(passphrase, k.Salt, k.Time, k.MemoryKiB, k.Threads, 32)
	defer clear(key)
	blk, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(blk)
	return aead
}

// Protected reports whether the key file at path needs a passphrase.
func Protected(path string) (bool, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return false, err
	}
	return f.Protection == "passphrase", nil
}

// OpenFile loads the key file at path, unsealing it with passphrase when it
// is protected.
func OpenFile(path string, passphrase Secret) (*File, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var unseal cipher.AEAD
	if f.Protection == "shamir" {
		return nil, ErrNeedShares
	}
	if f.Protection == "passphrase" {
		if len(passphrase) == 0 {
			return nil, ErrNeedPassphrase
		}
		if f.KDF == nil || f.KDF.Alg != "argon2id" || len(f.KDF.Salt) < 16 || f.KDF.MemoryKiB < 19*1024 || f.KDF.Time < 1 || f.KDF.Threads < 1 || f.KDF.MemoryKiB > 4<<20 || f.KDF.Time > 64 {
			return nil, fmt.Errorf("%w: bad key derivation parameters", ErrCorrupt)
		}
		unseal = f.KDF.aead(passphrase)
	}
	return openVersions(path, f, unseal, ErrWrongPassphrase)
}

// openVersions unseals every KEK version of f with unseal (nil: stored in
// the clear); wrong is the error for a version that does not authenticate.
func openVersions(path string, f *keyFile, unseal cipher.AEAD, wrong error) (*File, error) {
	p := &File{path: path, id: f.ID, versions: map[int]cipher.AEAD{}, protect: unseal, file: f}
	for _, v := range f.Versions {
		raw := bytes.Clone(v.Key) // cleared below; p.file keeps its copy
		if unseal != nil {
			// A sealed KEK is nonce || 32 bytes || tag; any other length is
			// damage, not a wrong passphrase.
			ns := unseal.NonceSize()
			if len(raw) != ns+32+unseal.Overhead() {
				return nil, fmt.Errorf("%w: bad key version %d", ErrCorrupt, v.Version)
			}
			var err error
			raw, err = unseal.Open(nil, raw[:ns], raw[ns:], []byte(f.ID+":"+strconv.Itoa(v.Version)))
			if err != nil {
				return nil, wrong
			}
		}
		if len(raw) != 32 || v.Version < 1 {
			return nil, fmt.Errorf("%w: bad key version %d", ErrCorrupt, v.Version)
		}
		blk, _ := aes.NewCipher(raw)
		aead, _ := cipher.NewGCM(blk)
		clear(raw)
		p.versions[v.Version] = aead
		p.current = max(p.current, v.Version)
	}
	return p, nil
}

func readKeyFile(path string) (*keyFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil || f.Format != fileFormat || f.ID == "" || len(f.Versions) == 0 ||
		(f.Protection != "none" && f.Protection != "passphrase" && f.Protection != "shamir") ||
		(f.Protection == "shamir" && (f.Shamir == nil || f.Shamir.Threshold < 2 || f.Shamir.Shares < f.Shamir.Threshold || f.Shamir.Shares > 255)) {
		return nil, ErrCorrupt
	}
	return &f, nil
}

func (p *File) kekID(version int) string { return "file:" + p.id + ":" + strconv.Itoa(version) }

// Wrap encrypts dek under the newest KEK version.
func (p *File) Wrap(_ context.Context, dek []byte) (barrier.Wrapped, error) {
	p.mu.RLock()
	id := p.kekID(p.current)
	aead := p.versions[p.current]
	p.mu.RUnlock()
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return barrier.Wrapped{KEK: id, Blob: aead.Seal(nonce, nonce, dek, []byte(id))}, nil
}

// Unwrap decrypts a data key wrapped by any version this file holds.
func (p *File) Unwrap(_ context.Context, w barrier.Wrapped) ([]byte, error) {
	rest, ok := strings.CutPrefix(w.KEK, "file:"+p.id+":")
	if !ok {
		return nil, ErrUnknownKEK
	}
	ver, err := strconv.Atoi(rest)
	p.mu.RLock()
	aead := p.versions[ver]
	p.mu.RUnlock()
	if err != nil || aead == nil {
		return nil, ErrUnknownKEK
	}
	ns := aead.NonceSize()
	if len(w.Blob) < ns {
		return nil, ErrCorrupt
	}
	dek, err := aead.Open(nil, w.Blob[:ns], w.Blob[ns:], []byte(w.KEK))
	if err != nil {
		return nil, fmt.Errorf("%w: wrapped data key does not authenticate", ErrCorrupt)
	}
	return dek, nil
}
