//go:build pkcs11

package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
)

const (
	ivSize  = 12  // AES-GCM nonce, random per wrap
	tagBits = 128 // AES-GCM tag
	keySize = 32  // AES-256
)

// Provider is the PKCS#11 KEK provider. It holds one logged-in session on
// the token; the HSM calls are serialized on it (the barrier caches data
// keys, so the provider is called when a key is first used, not per
// request). It is safe for concurrent use.
type Provider struct {
	mod   *module
	token string
	label string

	mu      sync.Mutex
	session p11.SessionHandle
	keys    map[int]p11.ObjectHandle // version -> key object
	current int
	found   time.Time // when keys was last read from the token
	closed  bool
}

var (
	_ barrier.KEK       = (*Provider)(nil)
	_ barrier.Versioned = (*Provider)(nil)
)

// Open logs in to the token of cfg and finds the versions of its key. It
// fails closed: a module that does not load (ErrModule), a token that is
// not there (ErrNoToken), a refused PIN (ErrWrongPIN, ErrPINLocked), no key
// of the label (ErrNoKey) or a key that could leave the token
// (ErrExtractable) give an error and no provider.
func Open(cfg Config) (*Provider, error) {
	p, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	if p.current == 0 {
		p.Close()
		return nil, fmt.Errorf("%w: token %q has no AES key labelled %q (was the data directory made with another token or key label?)", ErrNoKey, cfg.Token, cfg.Key)
	}
	return p, nil
}

// Create is Open for a new data directory: when the token holds no key of
// the label it generates version 1 there (created is then true). An
// existing key of the label (made or imported by the HSM's own tools, see
// docs/keys.md) is used as it is, if it is sensitive and not extractable.
func Create(cfg Config) (p *Provider, created bool, err error) {
	p, err = connect(cfg)
	if err != nil {
		return nil, false, err
	}
	if p.current > 0 {
		return p, false, nil
	}
	if _, err := p.Rotate(); err != nil {
		p.Close()
		return nil, false, err
	}
	return p, true, nil
}

func connect(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mod, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	p := &Provider{mod: mod, token: cfg.Token, label: cfg.Key, keys: map[int]p11.ObjectHandle{}}
	slot, err := mod.findSlot(cfg.Token)
	if err != nil {
		mod.release()
		return nil, err
	}
	if p.session, err = mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION); err != nil {
		mod.release()
		return nil, classify("open session", err)
	}
	// Within one process a token stays logged in while any session of it
	// is open; another provider of the same token has checked the PIN.
	if err := mod.ctx.Login(p.session, p11.CKU_USER, string(cfg.PIN)); err != nil && !is(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		p.Close()
		return nil, classify("log in to token "+strconv.Quote(cfg.Token), err)
	}
	if err := p.findKeys(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// findKeys loads the versions of the key label, replacing what was known
// (versions created or retired by another node sharing the token show up).
// Called with mu held or before p is shared.
func (p *Provider) findKeys() error {
	found, current, err := p.listKeys()
	if err != nil {
		return err
	}
	p.keys, p.current, p.found = found, current, time.Now()
	return nil
}

// refresh is findKeys on a provider in use: a listing with no version of
// the label (a token pulled or reset) fails with ErrTokenGone and keeps
// what was known. Called with mu held.
func (p *Provider) refresh() error {
	found, current, err := p.listKeys()
	if err != nil {
		return err
	}
	if current == 0 {
		return fmt.Errorf("%w: token %q lists no key %q", ErrTokenGone, p.token, p.label)
	}
	p.keys, p.current, p.found = found, current, time.Now()
	return nil
}

// listKeys reads the versions of the key label from the token.
func (p *Provider) listKeys() (map[int]p11.ObjectHandle, int, error) {
	found, current := map[int]p11.ObjectHandle{}, 0
	ctx := p.mod.ctx
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_LABEL, p.label),
	}
	if err := ctx.FindObjectsInit(p.session, tmpl); err != nil {
		return nil, 0, classify("find keys", err)
	}
	var objs []p11.ObjectHandle
	for {
		o, _, err := ctx.FindObjects(p.session, 64)
		if err != nil {
			ctx.FindObjectsFinal(p.session)
			return nil, 0, classify("find keys", err)
		}
		if len(o) == 0 {
			break
		}
		objs = append(objs, o...)
	}
	if err := ctx.FindObjectsFinal(p.session); err != nil {
		return nil, 0, classify("find keys", err)
	}
	for _, o := range objs {
		attrs, err := ctx.GetAttributeValue(p.session, o, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_ID, nil),
			p11.NewAttribute(p11.CKA_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
		})
		if err != nil {
			return nil, 0, classify("read key attributes", err)
		}
		id := string(attrs[0].Value)
		v, err := strconv.Atoi(id)
		if err != nil || v < 1 || strconv.Itoa(v) != id {
			return nil, 0, fmt.Errorf("pkcs11: token %q holds a key labelled %q with CKA_ID %q; versions are decimal ids 1, 2, ...", p.token, p.label, id)
		}
		if !isTrue(attrs[1].Value) || isTrue(attrs[2].Value) {
			return nil, 0, fmt.Errorf("%w (token %q, key %q, version %d)", ErrExtractable, p.token, p.label, v)
		}
		if ulong(attrs[3].Value) != keySize {
			return nil, 0, fmt.Errorf("pkcs11: token %q: key %q version %d is not AES-256", p.token, p.label, v)
		}
		if _, dup := found[v]; dup {
			return nil, 0, fmt.Errorf("pkcs11: token %q holds two keys %q of version %d", p.token, p.label, v)
		}
		found[v] = o
		current = max(current, v)
	}
	return found, current, nil
}

func isTrue(b []byte) bool { return len(b) == 1 && b[0] != 0 }

// ulong decodes a CK_ULONG attribute (native byte order); 0 if malformed.
func ulong(b []byte) uint64 {
	switch len(b) {
	case 8:
		return binary.NativeEndian.Uint64(b)
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return 0
}

// Current names the version Wrap uses (barrier.Versioned).
func (p *Provider) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return KEKName(p.token, p.label, p.current)
}

// KEKName is the Wrapped.KEK name of a version of this provider's key.
func (p *Provider) KEKName(version int) string { return KEKName(p.token, p.label, version) }

// Versions lists the key versions in the token, oldest first.
func (p *Provider) Versions() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.keys))
}

// Describe says where the KEK lives, for status reports.
func (p *Provider) Describe() string {
	return fmt.Sprintf("PKCS#11 token %q, key %q (module %s)", p.token, p.label, p.mod.path)
}

// Wrap encrypts dek with AES-256-GCM under the current version, inside the
// token. The blob is nonce || ciphertext || tag; the associated data is
// the version's name, so a blob cannot pass for another version's.
func (p *Provider) Wrap(_ context.Context, dek []byte) (barrier.Wrapped, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return barrier.Wrapped{}, keys.ErrSealed
	}
	if time.Since(p.found) > RefreshEvery {
		if err := p.refresh(); err != nil {
			return barrier.Wrapped{}, err
		}
	}
	w, err := p.wrap(dek)
	if err != nil {
		// The current version may have been retired by another node
		// since the list was read: read it again and try once more.
		if ferr := p.refresh(); ferr != nil {
			return barrier.Wrapped{}, err
		}
		w, err = p.wrap(dek)
	}
	return w, err
}

// wrap wraps dek under the current version. Called with mu held.
func (p *Provider) wrap(dek []byte) (barrier.Wrapped, error) {
	name := KEKName(p.token, p.label, p.current)
	iv := make([]byte, ivSize)
	rand.Read(iv)
	ct, err := p.crypt(true, p.keys[p.current], iv, []byte(name), dek)
	if err != nil {
		return barrier.Wrapped{}, err
	}
	return barrier.Wrapped{KEK: name, Blob: append(iv, ct...)}, nil
}

// Unwrap decrypts a data key wrapped by any version still in the token.
// A name of another provider, token, key or a retired version gives
// keys.ErrUnknownKEK; a blob that does not authenticate keys.ErrCorrupt.
func (p *Provider) Unwrap(_ context.Context, w barrier.Wrapped) ([]byte, error) {
	token, label, v, ok := ParseKEKName(w.KEK)
	if !ok || token != p.token || label != p.label {
		return nil, keys.ErrUnknownKEK
	}
	if len(w.Blob) < ivSize+tagBits/8 {
		return nil, fmt.Errorf("%w: wrapped data key too short", keys.ErrCorrupt)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, keys.ErrSealed
	}
	o, ok := p.keys[v]
	if !ok {
		// Maybe created by another node sharing the token since the list
		// was read.
		if err := p.refresh(); err != nil {
			return nil, err
		}
		if o, ok = p.keys[v]; !ok {
			return nil, fmt.Errorf("%w: version %d is not in token %q (retired?)", keys.ErrUnknownKEK, v, p.token)
		}
	}
	dek, err := p.crypt(false, o, w.Blob[:ivSize], []byte(w.KEK), w.Blob[ivSize:])
	if err != nil && !errors.Is(err, keys.ErrCorrupt) {
		// The version may have been retired by another node since the
		// list was read (its object handle is gone): read it again.
		if ferr := p.refresh(); ferr != nil {
			return nil, err
		}
		if o, ok = p.keys[v]; !ok {
			return nil, fmt.Errorf("%w: version %d is not in token %q (retired?)", keys.ErrUnknownKEK, v, p.token)
		}
		dek, err = p.crypt(false, o, w.Blob[:ivSize], []byte(w.KEK), w.Blob[ivSize:])
	}
	return dek, err
}

// crypt runs one AES-GCM operation in the token. Called with mu held.
func (p *Provider) crypt(encrypt bool, key p11.ObjectHandle, iv, aad, in []byte) ([]byte, error) {
	ctx := p.mod.ctx
	params := p11.NewGCMParams(iv, aad, tagBits)
	defer params.Free()
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}
	if encrypt {
		if err := ctx.EncryptInit(p.session, mech, key); err != nil {
			return nil, classify("wrap", err)
		}
		out, err := ctx.Encrypt(p.session, in)
		if err != nil {
			return nil, classify("wrap", err)
		}
		return out, nil
	}
	if err := ctx.DecryptInit(p.session, mech, key); err != nil {
		return nil, classify("unwrap", err)
	}
	out, err := ctx.Decrypt(p.session, in)
	if is(err, p11.CKR_GENERAL_ERROR) {
		// SoftHSM2 answers a GCM tag mismatch so; fail closed all the same.
		return nil, fmt.Errorf("%w: wrapped data key does not authenticate (unwrap: %w)", keys.ErrCorrupt, err)
	}
	if err != nil {
		return nil, classify("unwrap", err)
	}
	return out, nil
}

// Rotate generates a new key version in the token (AES-256, sensitive,
// never extractable, for encryption and decryption only) and makes it
// current. Data keys stay wrapped by older versions until barrier.Rewrap
// moves them.
func (p *Provider) Rotate() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, keys.ErrSealed
	}
	if p.current > 0 { // versions made by another node count (none yet: Create's first)
		if err := p.refresh(); err != nil {
			return 0, err
		}
	}
	v := p.current + 1
	o, err := p.mod.ctx.GenerateKey(p.session, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, keySize),
		p11.NewAttribute(p11.CKA_LABEL, p.label),
		p11.NewAttribute(p11.CKA_ID, []byte(strconv.Itoa(v))),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	})
	if err != nil {
		return 0, classify(fmt.Sprintf("generate key version %d", v), err)
	}
	p.keys[v] = o
	p.current = v
	return v, nil
}

// Retire destroys an old key version in the token. The caller must first
// make sure that no data key is wrapped by it (barrier.KEKUsage): data
// keys under a retired version can never be unwrapped again. The current
// version cannot be retired.
func (p *Provider) Retire(version int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return keys.ErrSealed
	}
	if err := p.refresh(); err != nil {
		return err
	}
	if version == p.current {
		return errors.New("pkcs11: the current KEK version cannot be retired")
	}
	o, ok := p.keys[version]
	if !ok {
		return fmt.Errorf("pkcs11: token %q holds no version %d of key %q", p.token, version, p.label)
	}
	if err := p.mod.ctx.DestroyObject(p.session, o); err != nil {
		return classify(fmt.Sprintf("destroy key version %d", version), err)
	}
	delete(p.keys, version)
	return nil
}

// Close ends the session; once the module's last provider closes, the
// library is finalised (which logs the token out). Later calls fail with
// keys.ErrSealed. Close is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.session != 0 {
		p.mod.ctx.CloseSession(p.session)
	}
	p.mod.release()
	return nil
}
