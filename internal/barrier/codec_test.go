package barrier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/phivault/phivault/internal/synth"
)

// TestBodyDictFixed pins the body dictionary: it is part of the sealed
// format, and any change to it makes every stored S2 body unreadable.
func TestBodyDictFixed(t *testing.T) {
	const want = "a61f8613630c70430dcf665c1498954dbd67f002b947120690a179312646424a"
	sum := sha256.Sum256(bodyDictData)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("bodydict.json has SHA-256 %s, want %s: the dictionary must never change", got, want)
	}
}

// sealRaw seals body as it is, with the given flags, under the key called
// name: values as an older phivault, or a forger holding the key, wrote them.
func sealRaw(t *testing.T, b *Barrier, name string, flags byte, c, body []byte) []byte {
	t.Helper()
	ctx := context.Background()
	id, err := b.KeyFor(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := b.key(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return seal(k.aead, id, flags, c, body)
}

// TestOpenZstdBodies: bodies sealed with zstd, as phivault did before the
// S2 codec, still open.
func TestOpenZstdBodies(t *testing.T) {
	b, _ := newBarrier(t)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	c := Context("default", "Observation", "o1", "1")
	for _, plain := range corpus(t, 20) {
		sealed := sealRaw(t, b, "patient/old", flagZstd, c, enc.EncodeAll(plain, nil))
		got, err := b.Open(context.Background(), c, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open of a zstd body = %.40q, %v; want %.40q", got, err, plain)
		}
	}
}

// TestOpenBadCompressedBody: a body that authenticates but does not decode
// (only the key's holder can make one) is ErrMalformed, not a panic or an
// allocation of what it claims.
func TestOpenBadCompressedBody(t *testing.T) {
	b, _ := newBarrier(t)
	c := Context("default", "Patient", "p1", "1")
	for _, tt := range []struct {
		name  string
		flags byte
		body  []byte
	}{
		{"zstd garbage", flagZstd, []byte("not a zstd frame at all")},
		{"S2 garbage", flagS2, []byte{0x10, 0xfe, 0xfe, 0xfe}},
		{"S2 truncated", flagS2, bodyDict().Encode(nil, bytes.Repeat([]byte(`{"status":"final"}`), 50))[:20]},
		{"both flags", flagZstd | flagS2, []byte("x")},
		{"unknown flag", 4, []byte("x")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sealed := sealRaw(t, b, "patient/p1", tt.flags, c, tt.body)
			if _, err := b.Open(context.Background(), c, sealed); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestDecompressBoundsClaim: an S2 block that claims more than maxPlain
// is refused before anything of that size is allocated.
func TestDecompressBoundsClaim(t *testing.T) {
	block := binary.AppendUvarint(nil, maxPlain+1<<20)
	block = append(block, bytes.Repeat([]byte{0}, 64)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decompress(flagS2, block)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("decompress = %v, want ErrMalformed", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("decompress allocated %d bytes for a block claiming %d", n, maxPlain+1<<20)
	}
}

// corpus returns up to n resources of the demo generator's population
// (another seed than the one the dictionary came from) in stored form:
// compact JSON with sorted keys and meta.
func corpus(t testing.TB, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, bun := range synth.Generate(synth.Options{Seed: 7, Patients: 10}) {
		for _, e := range bun["entry"].([]any) {
			res := e.(map[string]any)["resource"].(map[string]any)
			res["meta"] = map[string]any{"versionId": "1", "lastUpdated": "2026-12-01T07:32:17.123456Z"}
			body, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if out = append(out, body); len(out) == n {
				return out
			}
		}
	}
	return out
}

// TestBodyCompression: typical resources seal smaller with the S2 codec
// than with zstd, which it replaced, and every one round-trips.
func TestBodyCompression(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	var raw, s2n, zn int
	for _, p := range corpus(t, 2000) {
		z, flags := compress(p)
		if flags != flagS2 {
			t.Fatalf("a %d-byte resource was not compressed", len(p))
		}
		got, err := decompress(flags, z)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("round trip = %.40q, %v", got, err)
		}
		raw, s2n, zn = raw+len(p), s2n+len(z), zn+len(enc.EncodeAll(p, nil))
	}
	t.Logf("%d bytes: S2 with the dictionary %d (%.2fx), zstd %d (%.2fx)", raw, s2n, float64(raw)/float64(s2n), zn, float64(raw)/float64(zn))
	if s2n >= zn || raw < 3*s2n {
		t.Errorf("S2 with the dictionary gave %d bytes of %d, zstd %d: want smaller than zstd and at least 3x", s2n, raw, zn)
	}
}

func FuzzCodec(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","status":"final"}`))
	f.Add(bodyDict().Encode(nil, []byte(`{"resourceType":"Patient","gender":"male"}`)))
	f.Add([]byte{0x10, 0xfe, 0xfe, 0xfe})
	f.Fuzz(func(t *testing.T, data []byte) {
		if z, flags := compress(data); flags != 0 {
			if got, err := decompress(flags, z); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("round trip = %q, %v", got, err)
			}
		}
		for _, flags := range []byte{flagZstd, flagS2} {
			if p, err := decompress(flags, data); err == nil && len(p) > maxPlain {
				t.Fatalf("decoded %d bytes, above the bound", len(p))
			}
		}
	})
}

// BenchmarkCodec compares the S2 codec with zstd, which it replaced, on
// generated resources: b.N resources compressed or decompressed.
func BenchmarkCodec(b *testing.B) {
	bodies := corpus(b, 2000)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	zs, ss := make([][]byte, len(bodies)), make([][]byte, len(bodies))
	for i, p := range bodies {
		zs[i] = enc.EncodeAll(p, nil)
		ss[i], _ = compress(p)
	}
	b.Run("encode/s2dict", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			compress(bodies[i%len(bodies)])
		}
	})
	b.Run("encode/zstd", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			enc.EncodeAll(bodies[i%len(bodies)], nil)
		}
	})
	b.Run("decode/s2dict", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := decompress(flagS2, ss[i%len(ss)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/zstd", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := decompress(flagZstd, zs[i%len(zs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
