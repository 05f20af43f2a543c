package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/phivault/phivault/internal/barrier"
)

var _ barrier.Versioned = (*File)(nil)

// Protection returns how the key file at path is protected ("none",
// "passphrase" or "shamir") and, for "shamir", the threshold and number of
// shares.
func Protection(path string) (kind string, threshold, shares int, err error) {
	f, err := readKeyFile(path)
	if err != nil {
		return "", 0, 0, err
	}
	if f.Shamir != nil {
		threshold, shares = f.Shamir.Threshold, f.Shamir.Shares
	}
	return f.Protection, threshold, shares, nil
}

func aeadOf(key []byte) cipher.AEAD {
	blk, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(blk)
	return aead
}

// OpenFileShares opens a Shamir-protected key file with at least threshold
// shares (text as printed by Split). Shares that do not open it give
// ErrWrongShares, which does not say which share was wrong.
func OpenFileShares(path string, shares []Secret) (*File, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if f.Protection != "shamir" {
		return nil, fmt.Errorf("keys: key file is protected by %q, not shares", f.Protection)
	}
	var raw [][]byte
	for _, s := range shares {
		t, sh, err := decodeShare(string(s))
		if err != nil {
			return nil, err
		}
		if t != f.Shamir.Threshold {
			return nil, ErrWrongShares
		}
		raw = append(raw, sh)
	}
	if len(raw) < f.Shamir.Threshold {
		return nil, fmt.Errorf("keys: %d of %d shares given", len(raw), f.Shamir.Threshold)
	}
	key, err := shamirCombine(raw)
	for _, r := range raw {
		clear(r)
	}
	if err != nil {
		return nil, ErrWrongShares
	}
	defer clear(key)
	if len(key) != 32 {
		return nil, ErrWrongShares
	}
	return openVersions(path, f, aeadOf(key), ErrWrongShares)
}

// Current names the KEK version Wrap uses (barrier.Versioned).
func (p *File) Current() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.kekID(p.current)
}

// KEKName is the Wrapped.KEK name of a version of this file.
func (p *File) KEKName(version int) string { return p.kekID(version) }

// Versions lists the KEK versions the file holds, oldest first.
func (p *File) Versions() []int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []int
	for v := range p.versions {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Split re-protects the key file by Shamir secret sharing: a fresh random
// unseal key seals every KEK version, and is split into shares of which
// threshold open the file. The shares are returned once and never stored.
// The KEK versions themselves do not change, so no data key is rewrapped.
func (p *File) Split(shares, threshold int) ([]Secret, error) {
	key := make([]byte, 32)
	rand.Read(key)
	defer clear(key)
	parts, err := shamirSplit(key, shares, threshold)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := *p.file
	next.Protection, next.KDF = "shamir", nil
	next.Shamir = &shamirInfo{Shares: shares, Threshold: threshold}
	protect := aeadOf(key)
	if err := p.reseal(&next, protect); err != nil {
		return nil, err
	}
	if err := writeKeyFile(p.path, &next); err != nil {
		return nil, err
	}
	p.file, p.protect = &next, protect
	out := make([]Secret, len(parts))
	for i, s := range parts {
		out[i] = encodeShare(threshold, s)
		clear(s)
	}
	return out, nil
}

// reseal rewrites next.Versions sealed by protect (from p.protect).
func (p *File) reseal(next *keyFile, protect cipher.AEAD) error {
	vs := make([]keyVersion, len(p.file.Versions))
	for i, v := range p.file.Versions {
		raw, err := p.unprotect(v)
		if err != nil {
			return err
		}
		vs[i] = keyVersion{Version: v.Version, Key: p.protectWith(protect, next.ID, v.Version, raw)}
		clear(raw)
	}
	next.Versions = vs
	return nil
}

func (p *File) unprotect(v keyVersion) ([]byte, error) {
	if p.protect == nil {
		return append([]byte(nil), v.Key...), nil
	}
	ns := p.protect.NonceSize()
	if len(v.Key) < ns {
		return nil, ErrCorrupt
	}
	return p.protect.Open(nil, v.Key[:ns], v.Key[ns:], []byte(p.id+":"+strconv.Itoa(v.Version)))
}

func (p *File) protectWith(aead cipher.AEAD, id string, version int, raw []byte) []byte {
	if aead == nil {
		return append([]byte(nil), raw...)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, raw, []byte(id+":"+strconv.Itoa(version)))
}

// Rotate adds a new random KEK version to the key file (protected like the
// others) and makes it current: Wrap uses it from now on. Existing data
// keys stay wrapped by older versions until barrier.Rewrap moves them.
func (p *File) Rotate() (int, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	defer clear(raw)
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.current + 1
	next := *p.file
	next.Versions = append(slices.Clip(p.file.Versions), keyVersion{Version: v, Key: p.protectWith(p.protect, p.id, v, raw)})
	if err := writeKeyFile(p.path, &next); err != nil {
		return 0, err
	}
	p.file = &next
	p.versions[v] = aeadOf(raw)
	p.current = v
	return v, nil
}

// Retire removes an old KEK version from the key file. The caller must
// first make sure that no data key is wrapped by it (barrier.KEKUsage):
// data keys under a retired version can never be unwrapped again. The
// current version cannot be retired.
func (p *File) Retire(version int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if version == p.current {
		return errors.New("keys: the current KEK version cannot be retired")
	}
	if p.versions[version] == nil {
		return fmt.Errorf("keys: the key file has no version %d", version)
	}
	next := *p.file
	next.Versions = nil
	for _, v := range p.file.Versions {
		if v.Version != version {
			next.Versions = append(next.Versions, v)
		}
	}
	if err := writeKeyFile(p.path, &next); err != nil {
		return err
	}
	p.file = &next
	delete(p.versions, version)
	return nil
}

// writeKeyFile replaces the key file atomically (temporary file, fsync,
// rename, fsync of the directory), mode 0600.
func writeKeyFile(path string, f *keyFile) error {
	data, _ := json.MarshalIndent(f, "", "  ")
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = out.Write(append(data, '\n'))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Unsealer collects shares, given one at a time (each from another
// officer), until there are enough to open a Shamir-protected key file.
// It is safe for concurrent use.
type Unsealer struct {
	path string

	mu     sync.Mutex
	shares map[byte]Secret
}

// NewUnsealer returns an Unsealer for the key file at path.
func NewUnsealer(path string) *Unsealer {
	return &Unsealer{path: path, shares: map[byte]Secret{}}
}

// Add takes one share. Until the threshold is reached it returns the
// number of shares held and needed and a nil File; at the threshold it
// opens the key file and forgets the shares, whether or not they opened it
// (ErrWrongShares: start again). A share whose text is damaged
// (ErrMalformedShare) is not kept.
func (u *Unsealer) Add(share Secret) (have, need int, f *File, err error) {
	kind, t, _, err := Protection(u.path)
	if err != nil {
		return 0, 0, nil, err
	}
	if kind != "shamir" {
		return 0, 0, nil, fmt.Errorf("keys: key file is protected by %q, not shares", kind)
	}
	st, sh, err := decodeShare(string(share))
	if err != nil {
		return u.count(), t, nil, err
	}
	x := sh[0]
	clear(sh)
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, dup := u.shares[x]; dup {
		return len(u.shares), t, nil, ErrDuplicateShare
	}
	if st != t {
		clear(u.shares) // a share of another split: fail closed, start again
		return 0, t, nil, ErrWrongShares
	}
	u.shares[x] = append(Secret(nil), share...)
	if len(u.shares) < t {
		return len(u.shares), t, nil, nil
	}
	var all []Secret
	for _, s := range u.shares {
		all = append(all, s)
	}
	f, err = OpenFileShares(u.path, all)
	for _, s := range u.shares {
		clear(s)
	}
	clear(u.shares)
	if err != nil {
		return 0, t, nil, ErrWrongShares
	}
	return t, t, f, nil
}

// Reset forgets the shares given so far.
func (u *Unsealer) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.shares {
		clear(s)
	}
	clear(u.shares)
}

func (u *Unsealer) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.shares)
}
