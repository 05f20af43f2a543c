package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/barrier"
)

const testPass = "correct horse battery staple"

// protectedFile is created once per run: Argon2id at the default cost is
// slow under -race.
var (
	protDir  string
	protOnce = sync.OnceValues(func() (string, error) {
		p := filepath.Join(protDir, "kek.json")
		return p, CreateFile(p, Secret(testPass))
	})
)

func protectedFile(t *testing.T) string {
	t.Helper()
	p, err := protOnce()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMain(m *testing.M) {
	var err error
	if protDir, err = os.MkdirTemp("", "keys-test"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(protDir)
	os.Exit(code)
}

func devFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kek.json")
	if err := CreateFile(p, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kek.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPassphraseFile(t *testing.T) {
	path := protectedFile(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(testPass)) || bytes.Contains(data, []byte("horse")) {
		t.Fatal("the key file contains the passphrase")
	}
	if prot, err := Protected(path); err != nil || !prot {
		t.Errorf("Protected = %v, %v; want true", prot, err)
	}
	p, err := OpenFile(path, Secret(testPass))
	if err != nil {
		t.Fatalf("OpenFile with the right passphrase: %v", err)
	}
	roundTrip(t, p)
	if _, err := OpenFile(path, Secret(testPass+"!")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	if _, err := OpenFile(path, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Errorf("no passphrase: %v, want ErrNeedPassphrase", err)
	}
	m := readJSON(t, path)
	kdf := m["kdf"].(map[string]any)
	if kdf["alg"] != "argon2id" || kdf["time"] != 3.0 || kdf["memory_kib"] != 65536.0 || kdf["threads"] != 4.0 {
		t.Errorf("kdf parameters %v, want argon2id time 3 memory 65536 threads 4 (docs/ciphertext.md)", kdf)
	}
}

func TestDevFile(t *testing.T) {
	path := devFile(t)
	if prot, err := Protected(path); err != nil || prot {
		t.Errorf("Protected = %v, %v; want false", prot, err)
	}
	p, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, p)
}

func roundTrip(t *testing.T, p *File) {
	t.Helper()
	ctx := context.Background()
	dek := bytes.Repeat([]byte{0x5a}, 32)
	w, err := p.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.KEK, "file:"+p.id+":1") || bytes.Contains(w.Blob, dek) {
		t.Errorf("wrapped = %q (blob holds the key: %v)", w.KEK, bytes.Contains(w.Blob, dek))
	}
	got, err := p.Unwrap(ctx, w)
	if err != nil || !bytes.Equal(got, dek) {
		t.Errorf("Unwrap = %x, %v; want %x", got, err, dek)
	}
}

func TestFileModeAndNoOverwrite(t *testing.T) {
	path := devFile(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := CreateFile(path, nil); err == nil {
		t.Error("second CreateFile on the same path succeeded")
	}
	if err := CreateFile(path, Secret("x")); err == nil {
		t.Error("second CreateFile (with passphrase) on the same path succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("CreateFile overwrote an existing key file")
	}
}

func TestCorruptFiles(t *testing.T) {
	dev := readJSON(t, devFile(t))
	prot := readJSON(t, protectedFile(t))
	edit := func(base map[string]any, f func(m map[string]any)) map[string]any {
		var m map[string]any
		data, _ := json.Marshal(base)
		json.Unmarshal(data, &m)
		f(m)
		return m
	}
	kdf := func(m map[string]any) map[string]any { return m["kdf"].(map[string]any) }
	version0 := func(m map[string]any) map[string]any { return m["versions"].([]any)[0].(map[string]any) }
	tests := []struct {
		name string
		m    map[string]any
	}{
		{"wrong format", edit(dev, func(m map[string]any) { m["format"] = "phivault-kek-file/2" })},
		{"no format", edit(dev, func(m map[string]any) { delete(m, "format") })},
		{"no id", edit(dev, func(m map[string]any) { m["id"] = "" })},
		{"no versions", edit(dev, func(m map[string]any) { m["versions"] = []any{} })},
		{"unknown protection", edit(dev, func(m map[string]any) { m["protection"] = "rot13" })},
		{"truncated dev key", edit(dev, func(m map[string]any) { version0(m)["key"] = "AAAA" })},
		{"version 0", edit(dev, func(m map[string]any) { version0(m)["version"] = 0 })},
		{"no kdf", edit(prot, func(m map[string]any) { delete(m, "kdf") })},
		{"kdf other alg", edit(prot, func(m map[string]any) { kdf(m)["alg"] = "pbkdf2" })},
		{"kdf too little memory", edit(prot, func(m map[string]any) { kdf(m)["memory_kib"] = 1024 })},
		{"kdf zero time", edit(prot, func(m map[string]any) { kdf(m)["time"] = 0 })},
		{"kdf zero threads", edit(prot, func(m map[string]any) { kdf(m)["threads"] = 0 })},
		{"kdf short salt", edit(prot, func(m map[string]any) { kdf(m)["salt"] = "AAAA" })},
		{"kdf absurd memory", edit(prot, func(m map[string]any) { kdf(m)["memory_kib"] = 64 << 20 })},
		{"sealed key shorter than a nonce", edit(prot, func(m map[string]any) { version0(m)["key"] = "AAAA" })},
		{"sealed key truncated", edit(prot, func(m map[string]any) {
			k := version0(m)["key"].(string)
			version0(m)["key"] = k[:len(k)-8]
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := OpenFile(writeJSON(t, tt.m), Secret(testPass))
			if !errors.Is(err, ErrCorrupt) || p != nil {
				t.Errorf("OpenFile = %v, %v; want ErrCorrupt", p, err)
			}
		})
	}
	for name, data := range map[string]string{"not json": "{\"format\":", "empty": "", "array": "[]"} {
		p := filepath.Join(t.TempDir(), "kek.json")
		os.WriteFile(p, []byte(data), 0o600)
		if _, err := OpenFile(p, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: OpenFile = %v, want ErrCorrupt", name, err)
		}
		if _, err := Protected(p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Protected = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestUnwrapRejects(t *testing.T) {
	ctx := context.Background()
	a, err := OpenFile(devFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenFile(devFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Wrap(ctx, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Unwrap(ctx, w); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("Unwrap of another file's blob = %v, want ErrUnknownKEK", err)
	}
	// Same blob, relabelled as a's: the KEK id is bound as associated data.
	if _, err := a.Unwrap(ctx, barrier.Wrapped{KEK: "file:" + a.id + ":1", Blob: w.Blob}); err == nil {
		t.Error("Unwrap of another file's blob relabelled as ours succeeded")
	}
	if _, err := b.Unwrap(ctx, barrier.Wrapped{KEK: "file:" + b.id + ":2", Blob: w.Blob}); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("Unwrap under an unknown version = %v, want ErrUnknownKEK", err)
	}
	for i := range w.Blob {
		bad := bytes.Clone(w.Blob)
		bad[i] ^= 0x01
		if got, err := b.Unwrap(ctx, barrier.Wrapped{KEK: w.KEK, Blob: bad}); err == nil || got != nil {
			t.Fatalf("Unwrap with byte %d flipped = %x, %v; want error", i, got, err)
		}
	}
	if _, err := b.Unwrap(ctx, barrier.Wrapped{KEK: w.KEK, Blob: w.Blob[:5]}); err == nil {
		t.Error("Unwrap of a truncated blob succeeded")
	}
}

func TestSecretRedacted(t *testing.T) {
	s := Secret("hunter2-passphrase")
	outs := map[string]string{}
	for _, verb := range []string{"%v", "%s", "%q", "%#v", "%+v", "%x", "%X", "%d"} {
		outs[verb] = fmt.Sprintf(verb, s)
		outs[verb+" in struct"] = fmt.Sprintf(verb, struct{ P Secret }{s})
	}
	outs["String"] = s.String()
	outs["Sprint"] = fmt.Sprint(s)
	j, err := json.Marshal(struct{ P Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outs["json"] = string(j)
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("opening key file", "passphrase", s)
		outs[name] = buf.String()
	}
	for name, out := range outs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", []byte("hunter2"))) {
			t.Errorf("%s prints the secret: %s", name, out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s = %q, want **redacted**", name, out)
		}
	}
}
