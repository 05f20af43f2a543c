//go:build pkcs11

package pkcs11

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	p11 "github.com/miekg/pkcs11"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/keys/pkcs11/softhsmtest"
)

func config(tok *softhsmtest.Token) Config {
	return Config{Module: softhsmtest.Module, Token: tok.Label, Key: "phivault-kek", PIN: keys.Secret(tok.PIN)}
}

func create(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, _, err := Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// importKey puts a known AES-256 key into the token as version v of label,
// the way an operator imports a KEK: sensitive and not extractable.
func importKey(t *testing.T, cfg Config, label string, v string, value []byte, extractable bool) {
	t.Helper()
	mod, err := loadModule(cfg.Module)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.release()
	slot, err := mod.findSlot(cfg.Token)
	if err != nil {
		t.Fatal(err)
	}
	s, err := mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.ctx.CloseSession(s)
	if err := mod.ctx.Login(s, p11.CKU_USER, string(cfg.PIN)); err != nil && !is(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		t.Fatal(err)
	}
	_, err = mod.ctx.CreateObject(s, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE, value),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, []byte(v)),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, !extractable),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, extractable),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func gcm(t *testing.T, key []byte) cipher.AEAD {
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestPKCS11KnownAnswer: with a known KEK imported into the token, what the
// HSM wraps opens with standard AES-256-GCM (nonce || ciphertext || tag,
// associated data = the KEK name), and what standard AES-GCM seals the HSM
// unwraps: the stored format is exactly the documented one.
func TestPKCS11KnownAnswer(t *testing.T) {
	tok := softhsmtest.New(t, "kat", "1234-user")
	cfg := config(tok)
	kek := bytes.Repeat([]byte{0x42}, 32)
	importKey(t, cfg, cfg.Key, "1", kek, false)
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ref := gcm(t, kek)
	ctx := context.Background()
	for _, dek := range [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32), []byte("0123456789abcdef0123456789abcdef")} {
		w, err := p.Wrap(ctx, dek)
		if err != nil {
			t.Fatal(err)
		}
		if w.KEK != "pkcs11:kat:phivault-kek:1" || len(w.Blob) != 12+32+16 {
			t.Fatalf("wrapped = %q, %d bytes; want pkcs11:kat:phivault-kek:1, 60 bytes", w.KEK, len(w.Blob))
		}
		got, err := ref.Open(nil, w.Blob[:12], w.Blob[12:], []byte(w.KEK))
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("standard AES-GCM does not open the HSM's wrap: %v", err)
		}
		nonce := bytes.Repeat([]byte{7}, 12)
		blob := ref.Seal(append([]byte(nil), nonce...), nonce, dek, []byte(w.KEK))
		got, err = p.Unwrap(ctx, barrier.Wrapped{KEK: w.KEK, Blob: blob})
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("HSM unwrap of a standard AES-GCM blob = %x, %v; want %x", got, err, dek)
		}
	}
	// The fixed vector: key 0x42*32, nonce 0x07*12, AD the KEK name.
	vec := ref.Seal(nil, bytes.Repeat([]byte{7}, 12), make([]byte, 32), []byte("pkcs11:kat:phivault-kek:1"))
	got, err := p.Unwrap(ctx, barrier.Wrapped{KEK: "pkcs11:kat:phivault-kek:1", Blob: append(bytes.Repeat([]byte{7}, 12), vec...)})
	if err != nil || !bytes.Equal(got, make([]byte, 32)) {
		t.Fatalf("known vector: %x, %v", got, err)
	}
}

// TestPKCS11WrapUnwrap: round trips, fresh nonces, and every way a wrapped
// key can be wrong fails closed with the right error.
func TestPKCS11WrapUnwrap(t *testing.T) {
	tok := softhsmtest.New(t, "wrap", "1234-user")
	p, created, err := Create(config(tok))
	if err != nil || !created {
		t.Fatalf("Create = %v, created %v", err, created)
	}
	defer p.Close()
	ctx := context.Background()
	dek := []byte("data key data key data key 32 b!")
	w1, err := p.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := p.Wrap(ctx, dek)
	if bytes.Equal(w1.Blob, w2.Blob) {
		t.Fatal("two wraps of one key are equal: nonce reused")
	}
	if bytes.Contains(w1.Blob, dek) {
		t.Fatal("the wrapped key contains the data key")
	}
	for _, w := range []barrier.Wrapped{w1, w2} {
		got, err := p.Unwrap(ctx, w)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("Unwrap = %q, %v", got, err)
		}
	}
	flip := bytes.Clone(w1.Blob)
	flip[len(flip)-1] ^= 1
	for _, c := range []struct {
		name string
		w    barrier.Wrapped
		want error
	}{
		{"tampered tag", barrier.Wrapped{KEK: w1.KEK, Blob: flip}, keys.ErrCorrupt},
		{"truncated", barrier.Wrapped{KEK: w1.KEK, Blob: w1.Blob[:20]}, keys.ErrCorrupt},
		{"no such version", barrier.Wrapped{KEK: "pkcs11:wrap:phivault-kek:9", Blob: w1.Blob}, keys.ErrUnknownKEK},
		{"other token", barrier.Wrapped{KEK: "pkcs11:other:phivault-kek:1", Blob: w1.Blob}, keys.ErrUnknownKEK},
		{"other provider", barrier.Wrapped{KEK: "file:0011223344556677:1", Blob: w1.Blob}, keys.ErrUnknownKEK},
	} {
		got, err := p.Unwrap(ctx, c.w)
		if !errors.Is(err, c.want) || got != nil {
			t.Errorf("%s: Unwrap = %x, %v; want %v", c.name, got, err, c.want)
		}
	}
	// Reopening does not make a new key: the same version unwraps.
	p.Close()
	q, created, err := Create(config(tok))
	if err != nil || created {
		t.Fatalf("second Create = %v, created %v; want the existing key", err, created)
	}
	defer q.Close()
	if got, err := q.Unwrap(ctx, w1); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("after reopen: %v", err)
	}
	if _, err := p.Wrap(ctx, dek); !errors.Is(err, keys.ErrSealed) {
		t.Fatalf("Wrap after Close = %v, want ErrSealed", err)
	}
}

// TestPKCS11KeyNotExtractable: the token refuses to reveal the KEK.
func TestPKCS11KeyNotExtractable(t *testing.T) {
	tok := softhsmtest.New(t, "extract", "1234-user")
	p := create(t, config(tok))
	o := p.keys[1]
	_, err := p.mod.ctx.GetAttributeValue(p.session, o, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
	if !is(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("reading CKA_VALUE = %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	attrs, err := p.mod.ctx.GetAttributeValue(p.session, o, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_SENSITIVE, nil), p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil), p11.NewAttribute(p11.CKA_TOKEN, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := []bool{isTrue(attrs[0].Value), isTrue(attrs[1].Value), isTrue(attrs[2].Value), isTrue(attrs[3].Value)}
	if diff := cmp.Diff([]bool{true, false, true, true}, got); diff != "" {
		t.Fatalf("sensitive, extractable, never-extractable, token (-want +got):\n%s", diff)
	}
	// Nor can it be wrapped out by another key.
	if _, err := p.mod.ctx.WrapKey(p.session, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_WRAP_PAD, nil)}, o, o); err == nil {
		t.Fatal("the KEK could be wrapped out of the token")
	}
}

// TestPKCS11RotateRetire: a new version wraps, old ones still unwrap (also
// after a restart), the current one cannot be retired, and a retired one
// no longer unwraps.
func TestPKCS11RotateRetire(t *testing.T) {
	tok := softhsmtest.New(t, "rotate", "1234-user")
	cfg := config(tok)
	p := create(t, cfg)
	ctx := context.Background()
	dek1, dek2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	w1, _ := p.Wrap(ctx, dek1)
	v, err := p.Rotate()
	if err != nil || v != 2 || p.Current() != "pkcs11:rotate:phivault-kek:2" {
		t.Fatalf("Rotate = %d, %v; current %s", v, err, p.Current())
	}
	w2, err := p.Wrap(ctx, dek2)
	if err != nil || w2.KEK != "pkcs11:rotate:phivault-kek:2" {
		t.Fatalf("Wrap after rotate = %q, %v", w2.KEK, err)
	}
	p.Close()
	q, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if diff := cmp.Diff([]int{1, 2}, q.Versions()); diff != "" {
		t.Fatalf("versions after restart (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		w   barrier.Wrapped
		dek []byte
	}{{w1, dek1}, {w2, dek2}} {
		if got, err := q.Unwrap(ctx, c.w); err != nil || !bytes.Equal(got, c.dek) {
			t.Fatalf("Unwrap %s after restart: %v", c.w.KEK, err)
		}
	}
	if err := q.Retire(2); err == nil {
		t.Fatal("the current version was retired")
	}
	if err := q.Retire(1); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Unwrap(ctx, w1); !errors.Is(err, keys.ErrUnknownKEK) {
		t.Fatalf("Unwrap under a retired version = %v, want ErrUnknownKEK", err)
	}
	q.Close()
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if diff := cmp.Diff([]int{2}, r.Versions()); diff != "" {
		t.Fatalf("versions after retire and restart (-want +got):\n%s", diff)
	}
}

// TestPKCS11FailClosed: each misconfiguration gives no provider and an
// error that says what is wrong.
func TestPKCS11FailClosed(t *testing.T) {
	tok := softhsmtest.New(t, "closed", "1234-user")
	good := config(tok)
	create(t, good).Close()
	importKey(t, good, "leaky", "1", bytes.Repeat([]byte{9}, 32), true)
	badModule := filepath.Join(t.TempDir(), "nothing.so")
	for _, c := range []struct {
		name string
		edit func(*Config)
		want error
	}{
		{"wrong PIN", func(c *Config) { c.PIN = keys.Secret("0000-wrong") }, ErrWrongPIN},
		{"missing token", func(c *Config) { c.Token = "no-such-token" }, ErrNoToken},
		{"missing key label", func(c *Config) { c.Key = "no-such-key" }, ErrNoKey},
		{"module not loadable", func(c *Config) { c.Module = badModule }, ErrModule},
		{"extractable key", func(c *Config) { c.Key = "leaky" }, ErrExtractable},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.edit(&cfg)
			p, err := Open(cfg)
			if !errors.Is(err, c.want) || p != nil {
				t.Fatalf("Open = %v, %v; want %v", p, err, c.want)
			}
			if bytes.Contains([]byte(err.Error()), good.PIN) {
				t.Fatalf("the error shows the PIN: %v", err)
			}
			t.Logf("%s: %v", c.name, err)
		})
	}
	// Nothing stays open after the failures: the right PIN works.
	p, err := Open(good)
	if err != nil {
		t.Fatalf("Open after failures: %v", err)
	}
	p.Close()
}

// TestPKCS11TokenGone: with the token directory moved away (the token
// pulled) a running provider fails every call, a restart finds no token, and pointing SOFTHSM2_CONF elsewhere
// does the same; putting it back restores access.
func TestPKCS11TokenGone(t *testing.T) {
	tok := softhsmtest.New(t, "gone", "1234-user")
	cfg := config(tok)
	p := create(t, cfg)
	ctx := context.Background()
	dek := bytes.Repeat([]byte{5}, 32)
	w, _ := p.Wrap(ctx, dek)

	// Pull the token (its own directory inside the token directory) while
	// the provider is open: every later call fails with ErrTokenGone.
	sub, err := filepath.Glob(filepath.Join(tok.Dir, "*"))
	if err != nil || len(sub) != 1 {
		t.Fatalf("token directory holds %v, %v; want one token", sub, err)
	}
	away := filepath.Join(t.TempDir(), "pulled")
	if err := os.Rename(sub[0], away); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Unwrap(ctx, w); !errors.Is(err, ErrTokenGone) || got != nil {
		t.Fatalf("Unwrap with the token pulled = %x, %v; want ErrTokenGone", got, err)
	}
	if _, err := p.Wrap(ctx, dek); !errors.Is(err, ErrTokenGone) {
		t.Fatalf("Wrap with the token pulled = %v; want ErrTokenGone", err)
	}
	p.Close()
	if q, err := Open(cfg); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Open with the token pulled = %v, %v; want ErrNoToken", q, err)
	} else {
		t.Logf("token pulled: %v", err)
	}
	if err := os.Rename(away, sub[0]); err != nil {
		t.Fatal(err)
	}
	// Remove the whole token directory: the module itself cannot start.
	moved := tok.Dir + ".away"
	if err := os.Rename(tok.Dir, moved); err != nil {
		t.Fatal(err)
	}
	if q, err := Open(cfg); !errors.Is(err, ErrModule) || !strings.Contains(err.Error(), "token directory") {
		t.Fatalf("Open with the token directory gone = %v, %v; want ErrModule naming the token directory", q, err)
	} else {
		t.Logf("token directory gone: %v", err)
	}
	if err := os.Rename(moved, tok.Dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", filepath.Join(t.TempDir(), "absent.conf"))
	if q, err := Open(cfg); !errors.Is(err, ErrModule) && !errors.Is(err, ErrNoToken) {
		t.Fatalf("Open with SOFTHSM2_CONF elsewhere = %v, %v; want ErrModule or ErrNoToken", q, err)
	} else {
		t.Logf("config elsewhere: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	q, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open with the token back: %v", err)
	}
	defer q.Close()
	if got, err := q.Unwrap(ctx, w); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap with the token back: %v", err)
	}
}

// BenchmarkPKCS11 measures one wrap and one unwrap in SoftHSM2 against the
// file provider's in-process AES-GCM, in one run (report the ratio).
func BenchmarkPKCS11(b *testing.B) {
	tok := softhsmtest.New(b, "bench", "1234-user")
	p, _, err := Create(config(tok))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(b.TempDir(), "kek.json")
	if err := keys.CreateFile(path, nil); err != nil {
		b.Fatal(err)
	}
	f, err := keys.OpenFile(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	dek := bytes.Repeat([]byte{3}, 32)
	for _, c := range []struct {
		name string
		kek  barrier.KEK
	}{{"pkcs11", p}, {"file", f}} {
		w, _ := c.kek.Wrap(ctx, dek)
		b.Run(c.name+"/wrap", func(b *testing.B) {
			for b.Loop() {
				if _, err := c.kek.Wrap(ctx, dek); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/unwrap", func(b *testing.B) {
			for b.Loop() {
				if _, err := c.kek.Unwrap(ctx, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPKCS11SharedToken: two providers on one token stand for two nodes
// sharing an HSM. A version one of them creates is usable by the other at
// once for unwrapping, becomes its current version for wrapping within
// RefreshEvery, and counts when the other rotates next (no duplicate
// version); a version one retires is gone for the other too.
func TestPKCS11SharedToken(t *testing.T) {
	tok := softhsmtest.New(t, "shared", "1234-user")
	cfg := config(tok)
	a := create(t, cfg)
	defer a.Close()
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	dek := bytes.Repeat([]byte{7}, 32)
	if v, err := a.Rotate(); err != nil || v != 2 {
		t.Fatalf("rotate on a = %d, %v", v, err)
	}
	w2, err := a.Wrap(ctx, dek)
	if err != nil || w2.KEK != a.KEKName(2) {
		t.Fatalf("a wraps under %q, %v; want version 2", w2.KEK, err)
	}
	if got, err := b.Unwrap(ctx, w2); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("b unwraps a key wrapped under the version a created: %v", err)
	}
	time.Sleep(RefreshEvery + 100*time.Millisecond)
	if w, err := b.Wrap(ctx, dek); err != nil || w.KEK != b.KEKName(2) {
		t.Fatalf("b wraps under %q, %v %v after a's rotation; want version 2", w.KEK, err, RefreshEvery)
	}
	if v, err := b.Rotate(); err != nil || v != 3 {
		t.Fatalf("rotate on b after a's = %d, %v; want version 3", v, err)
	}
	if err := b.Retire(1); err != nil {
		t.Fatal(err)
	}
	w1 := barrier.Wrapped{KEK: a.KEKName(1), Blob: w2.Blob}
	if _, err := a.Unwrap(ctx, w1); !errors.Is(err, keys.ErrUnknownKEK) {
		t.Fatalf("a unwraps under version 1 that b retired: %v, want ErrUnknownKEK", err)
	}
	if w, err := a.Wrap(ctx, dek); err != nil || w.KEK != a.KEKName(3) {
		t.Fatalf("a wraps under %q, %v after b's rotation and retire; want version 3", w.KEK, err)
	}
}
