package barrier

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
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// testKEK is a test double for a KEK provider: AES-256-GCM under a random
// key, named so that Unwrap rejects blobs wrapped by another testKEK.
type testKEK struct {
	name  string
	aead  cipher.AEAD
	delay time.Duration // slows Wrap, to widen races
}

func newTestKEK(t testing.TB) *testKEK {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	return &testKEK{name: "test:" + hex.EncodeToString(k[:4]), aead: aead}
}

func (k *testKEK) Wrap(_ context.Context, dek []byte) (Wrapped, error) {
	time.Sleep(k.delay)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	return Wrapped{KEK: k.name, Blob: k.aead.Seal(nonce, nonce, dek, []byte(k.name))}, nil
}

func (k *testKEK) Unwrap(_ context.Context, w Wrapped) ([]byte, error) {
	if w.KEK != k.name || len(w.Blob) < 12 {
		return nil, errors.New("testKEK: not mine")
	}
	return k.aead.Open(nil, w.Blob[:12], w.Blob[12:], []byte(k.name))
}

func openStore(t testing.TB) *sqlite.Backend {
	t.Helper()
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openBarrier(t testing.TB, kek KEK, st store.Backend, cacheSize int) *Barrier {
	t.Helper()
	b, err := Open(context.Background(), kek, st, cacheSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newBarrier(t testing.TB) (*Barrier, *sqlite.Backend) {
	st := openStore(t)
	return openBarrier(t, newTestKEK(t), st, 100), st
}

func metaAll(t testing.TB, st store.Backend, prefix string) []store.KV {
	t.Helper()
	var kvs []store.KV
	if err := st.View(context.Background(), func(r store.Reader) error {
		var err error
		kvs, err = r.MetaPrefix(prefix)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return kvs
}

func TestSealOpenRoundTrip(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	random := make([]byte, 4096)
	rand.Read(random)
	tests := []struct {
		name      string
		plaintext []byte
		wantFlags byte
	}{
		{"empty", []byte{}, 0},
		{"small resource, compressed against the dictionary", []byte(`{"resourceType":"Patient","id":"p1","gender":"female"}`), flagS2},
		{"short incompressible", random[:24], 0},
		{"large compressible", bytes.Repeat([]byte(`{"code":"8302-2","value":172.5},`), 200), flagS2},
		{"large incompressible", random, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Context("default", "Patient", "p1", "1")
			sealed, err := b.Seal(ctx, "patient/p1", c, tt.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if sealed[0] != formatV1 || sealed[1] != tt.wantFlags {
				t.Fatalf("header = %d,%d, want %d,%d", sealed[0], sealed[1], formatV1, tt.wantFlags)
			}
			if tt.wantFlags == 0 && len(sealed) != headerSize+len(tt.plaintext)+16 {
				t.Errorf("raw sealed length %d, want %d", len(sealed), headerSize+len(tt.plaintext)+16)
			}
			if tt.wantFlags == flagS2 && len(sealed)-headerSize-16 >= len(tt.plaintext) {
				t.Errorf("compressed body of %d bytes not below plaintext %d", len(sealed)-headerSize-16, len(tt.plaintext))
			}
			if len(tt.plaintext) > 16 && bytes.Contains(sealed, tt.plaintext[:16]) {
				t.Error("sealed value contains plaintext")
			}
			got, err := b.Open(ctx, c, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
		})
	}
}

func TestOpenOtherContextFails(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	sealed, err := b.Seal(ctx, "patient/p1", Context("t1", "Patient", "p1", "2"), []byte("secret body"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"t2", "Patient", "p1", "2"},
		{"t1", "Observation", "p1", "2"},
		{"t1", "Patient", "p2", "2"},
		{"t1", "Patient", "p1", "1"},
		{"t1", "Patient", "p1"},
		{"t1", "Patient", "p1", "2", ""},
		{"t1P", "atient", "p1", "2"}, // same concatenation, other boundaries
	} {
		pt, err := b.Open(ctx, Context(c...), sealed)
		if !errors.Is(err, ErrAuthentication) || pt != nil {
			t.Errorf("Open with context %q = %q, %v; want nil, ErrAuthentication", c, pt, err)
		}
	}
}

func TestEveryBitFlipFails(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	c := Context("t", "Observation", "o1", "1")
	for _, pt := range [][]byte{[]byte("heart rate 72"), bytes.Repeat([]byte("compressible "), 40)} {
		sealed, err := b.Seal(ctx, "patient/p1", c, pt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(sealed) * 8 {
			bad := bytes.Clone(sealed)
			bad[i/8] ^= 1 << (i % 8)
			got, err := b.Open(ctx, c, bad)
			if got != nil || !(errors.Is(err, ErrAuthentication) || errors.Is(err, ErrMalformed)) {
				t.Fatalf("flip of bit %d (byte %d) = %q, %v; want no plaintext and ErrAuthentication/ErrMalformed", i, i/8, got, err)
			}
		}
	}
}

func TestTruncatedFails(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	c := Context("t", "Observation", "o1", "1")
	sealed, err := b.Seal(ctx, "patient/p1", c, []byte("some clinical text"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(sealed) {
		got, err := b.Open(ctx, c, sealed[:n])
		if got != nil || !(errors.Is(err, ErrAuthentication) || errors.Is(err, ErrMalformed)) {
			t.Errorf("Open of %d/%d bytes = %q, %v", n, len(sealed), got, err)
		}
		if n < headerSize+16 && !errors.Is(err, ErrMalformed) {
			t.Errorf("Open of %d bytes (shorter than header+tag) = %v, want ErrMalformed", n, err)
		}
	}
}

func TestKeyIDSwapFails(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	c := Context("t", "Observation", "o1", "1")
	sealed, err := b.Seal(ctx, "patient/A", c, []byte("A's result"))
	if err != nil {
		t.Fatal(err)
	}
	idB, err := b.KeyFor(ctx, "patient/B")
	if err != nil {
		t.Fatal(err)
	}
	idA, _ := KeyIDOf(sealed)
	if idA == idB {
		t.Fatal("patients A and B share a data key")
	}
	bad := bytes.Clone(sealed)
	copy(bad[2:2+KeyIDSize], idB[:])
	if got, err := b.Open(ctx, c, bad); got != nil || !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Open with B's key id = %q, %v; want ErrAuthentication", got, err)
	}
}

// TestKnownAnswer builds a sealed value with crypto/aes directly, following
// docs/ciphertext.md, under a data key injected into the store as a key
// record, and checks that the barrier opens it.
func TestKnownAnswer(t *testing.T) {
	st := openStore(t)
	kek := newTestKEK(t)
	b := openBarrier(t, kek, st, 100)
	ctx := context.Background()

	dek, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	id := KeyID{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf}
	nonce, _ := hex.DecodeString("cafebabefacedbaddecaf888")
	plaintext := []byte(`{"resourceType":"Patient","id":"kat"}`)
	aad := Context("default", "Patient", "kat", "1")
	w, err := kek.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(map[string]any{"wrapped": w, "created": time.Unix(0, 0).UTC()})
	if err := st.Update(ctx, func(tx store.Writer) error {
		return tx.CreateMeta("key/"+hex.EncodeToString(id[:]), rec)
	}); err != nil {
		t.Fatal(err)
	}

	hdr := append(append([]byte{1, 0}, id[:]...), nonce...)
	ad := append(bytes.Clone(hdr), 0, 0, 0, byte(len(aad)))
	ad = append(ad, aad...)
	blk, _ := aes.NewCipher(dek)
	gcm, _ := cipher.NewGCM(blk)
	sealed := gcm.Seal(bytes.Clone(hdr), nonce, plaintext, ad)

	// Pinned: the same inputs always give these bytes (a format change
	// breaks every stored value).
	const want = "01" + "00" + "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" + "cafebabefacedbaddecaf888"
	if got := hex.EncodeToString(sealed[:headerSize]); got != want {
		t.Fatalf("vector header = %s, want %s", got, want)
	}
	got, err := b.Open(ctx, aad, sealed)
	if err != nil {
		t.Fatalf("barrier cannot open the known-answer vector: %v", err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Fatalf("Open = %q, want %q", got, plaintext)
	}
	if kid, err := KeyIDOf(sealed); err != nil || kid != id {
		t.Errorf("KeyIDOf = %x, %v; want %x", kid, err, id)
	}
}

// TestSealedLayout checks a value the barrier seals against the documented
// layout, offset by offset, decrypting it with crypto/aes directly.
func TestSealedLayout(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	for _, plaintext := range [][]byte{[]byte("short body"), bytes.Repeat([]byte("abcdefgh"), 100)} {
		c := Context("default", "Observation", "o9", "3")
		sealed, err := b.Seal(ctx, "patient/layout", c, plaintext)
		if err != nil {
			t.Fatal(err)
		}
		id, err := b.KeyFor(ctx, "patient/layout")
		if err != nil {
			t.Fatal(err)
		}
		k, err := b.key(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if sealed[0] != 1 {
			t.Errorf("offset 0: version %d, want 1", sealed[0])
		}
		if !bytes.Equal(sealed[2:18], id[:]) {
			t.Errorf("offsets 2..18: %x, want key id %x", sealed[2:18], id[:])
		}
		ad := append(bytes.Clone(sealed[:30]), byte(len(c)>>24), byte(len(c)>>16), byte(len(c)>>8), byte(len(c)))
		ad = append(ad, c...)
		blk, _ := aes.NewCipher(k.raw)
		gcm, _ := cipher.NewGCM(blk)
		body, err := gcm.Open(nil, sealed[18:30], sealed[30:], ad)
		if err != nil {
			t.Fatalf("documented layout does not decrypt: %v", err)
		}
		switch sealed[1] {
		case 0:
			if !bytes.Equal(body, plaintext) {
				t.Errorf("raw body = %q, want %q", body, plaintext)
			}
		case 2: // an S2 block against the documented dictionary file
			dict, err := os.ReadFile("bodydict.json")
			if err != nil {
				t.Fatal(err)
			}
			if body, err = s2.MakeDict(dict, []byte(`{"`)).Decode(nil, body); err != nil || !bytes.Equal(body, plaintext) {
				t.Errorf("S2 body = %q, %v; want %q", body, err, plaintext)
			}
		default:
			t.Errorf("offset 1: flags %#x", sealed[1])
		}
	}
}

func TestKeyForConcurrent(t *testing.T) {
	st := openStore(t)
	kek := newTestKEK(t)
	b := openBarrier(t, kek, st, 100)
	kek.delay = 20 * time.Millisecond // every caller looks before anyone creates
	ctx := context.Background()
	before := len(metaAll(t, st, "key/"))
	ids := make([]KeyID, 50)
	errs := make([]error, 50)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			<-start
			ids[i], errs[i] = b.KeyFor(ctx, "patient/new")
		})
	}
	close(start)
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("goroutine %d got key %s, goroutine 0 got %s", i, ids[i], ids[0])
		}
	}
	if n := len(metaAll(t, st, "key/")) - before; n != 1 {
		t.Errorf("%d key records created for one name, want 1", n)
	}
	// A fresh barrier (no name cache) resolves the name to the same key.
	b2 := openBarrier(t, b.kek, st, 100)
	if id, err := b2.KeyFor(ctx, "patient/new"); err != nil || id != ids[0] {
		t.Errorf("reopened KeyFor = %s, %v; want %s", id, err, ids[0])
	}
}

func TestCacheEvictsAndZeroes(t *testing.T) {
	st := openStore(t)
	b := openBarrier(t, newTestKEK(t), st, 16)
	ctx := context.Background()
	c := Context("t")
	tokBefore := b.Token("idx", "x")
	sealedFirst, err := b.Seal(ctx, "patient/0", c, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	id0, _ := KeyIDOf(sealedFirst)
	k0 := b.cache.get(id0)
	if k0 == nil {
		t.Fatal("key not cached after Seal")
	}
	for i := 1; i < 40; i++ {
		if _, err := b.Seal(ctx, fmt.Sprintf("patient/%d", i), c, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.cache.order.Len(); n > 16 || len(b.cache.items) > 16 {
		t.Errorf("cache holds %d keys, bound is 16", n)
	}
	if b.cache.get(id0) != nil {
		t.Error("least recently used key still cached")
	}
	if !bytes.Equal(k0.raw, make([]byte, 32)) {
		t.Errorf("evicted key bytes not zeroed: %x", k0.raw)
	}
	// Evicted keys are unwrapped again on use.
	if got, err := b.Open(ctx, c, sealedFirst); err != nil || string(got) != "first" {
		t.Errorf("Open after eviction = %q, %v", got, err)
	}
	// Evicting the index key must not change blind tokens.
	b.hmacs.Store(hmacPool(b.index)) // drop pooled HMACs: force new ones
	if tok := b.Token("idx", "x"); !bytes.Equal(tok, tokBefore) {
		t.Error("blind tokens changed after the index key was evicted from the cache")
	}
}

func TestDestroyedKey(t *testing.T) {
	b, st := newBarrier(t)
	ctx := context.Background()
	c := Context("t", "Observation", "o1", "1")
	sealed, err := b.Seal(ctx, "patient/gone", c, []byte("erase me"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := KeyIDOf(sealed)
	rec, _ := json.Marshal(keyRecord{Created: time.Now().UTC(), Destroyed: time.Now().UTC()})
	if err := st.Update(ctx, func(tx store.Writer) error { return tx.SetMeta(metaKey+id.String(), rec) }); err != nil {
		t.Fatal(err)
	}
	b.cache.purge() // the next Open reads the record
	if got, err := b.Open(ctx, c, sealed); got != nil || !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Open under destroyed key = %q, %v; want ErrKeyDestroyed", got, err)
	}
	// A record marked destroyed that still holds its wrapped key (a
	// destruction cut short) must not be used either.
	w, err := b.kek.Wrap(ctx, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	half, _ := json.Marshal(keyRecord{Wrapped: &w, Created: time.Now().UTC(), Destroyed: time.Now().UTC()})
	sealed2, err := b.Seal(ctx, "patient/half", c, []byte("erase me too"))
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := KeyIDOf(sealed2)
	if err := st.Update(ctx, func(tx store.Writer) error { return tx.SetMeta(metaKey+id2.String(), half) }); err != nil {
		t.Fatal(err)
	}
	b.cache.purge()
	if got, err := b.Open(ctx, c, sealed2); got != nil || !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Open under a destroyed key whose record keeps the wrapped key = %q, %v; want ErrKeyDestroyed", got, err)
	}
	b2 := openBarrier(t, b.kek, st, 100)
	if _, err := b2.Open(ctx, c, sealed); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("fresh barrier: Open = %v; want ErrKeyDestroyed", err)
	}
}

func TestNoKeyNamesInStore(t *testing.T) {
	b, st := newBarrier(t)
	ctx := context.Background()
	names := []string{"patient/123", "patient/alice-smith", "tenant/clinic-north"}
	for _, n := range names {
		if _, err := b.Seal(ctx, n, Context("x"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	kvs := metaAll(t, st, "")
	if len(kvs) < 2*(len(names)+1) {
		t.Fatalf("only %d meta entries; expected key records and name mappings", len(kvs))
	}
	for _, kv := range kvs {
		for _, n := range append(names, "patient", "alice", "clinic") {
			if strings.Contains(kv.Key, n) || bytes.Contains(kv.Value, []byte(n)) {
				t.Errorf("meta entry %q holds key name %q", kv.Key, n)
			}
		}
	}
}

// TestOpenedValuesAreTheirOwn: what Open returns is the caller's: opening
// other values after it, from many goroutines at once, leaves it as it
// was, and the sealed input is not changed either (compressed values are
// decrypted into shared scratch buffers).
func TestOpenedValuesAreTheirOwn(t *testing.T) {
	b, _ := newBarrier(t)
	ctx := context.Background()
	const n = 40
	plain := make([][]byte, n)
	sealed := make([][]byte, n)
	for i := range n {
		plain[i] = bytes.Repeat(fmt.Appendf(nil, `{"resourceType":"Observation","id":"o%d","value":%d},`, i, i), 1+i*7)
		var err error
		if sealed[i], err = b.Seal(ctx, "patient/p1", Context("o", fmt.Sprint(i)), plain[i]); err != nil {
			t.Fatal(err)
		}
		if sealed[i][1] == 0 {
			t.Fatalf("value %d was not compressed", i)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var got [][]byte
			for round := range 5 {
				for i := range n {
					j := (i + g*11 + round) % n
					before := bytes.Clone(sealed[j])
					v, err := b.Open(ctx, Context("o", fmt.Sprint(j)), sealed[j])
					if err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(sealed[j], before) {
						t.Errorf("Open changed its input %d", j)
					}
					got = append(got, v)
				}
			}
			for k, v := range got {
				j := (k%n + g*11 + k/n) % n
				if !bytes.Equal(v, plain[j]) {
					t.Errorf("goroutine %d: value %d changed after later opens", g, j)
					return
				}
			}
		})
	}
	wg.Wait()
}
