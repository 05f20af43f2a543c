package backup

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// fixture is a repository with two recipients and a source directory.
type fixture struct {
	repo     string
	key      *Key
	ids      []*age.X25519Identity
	src      string
	contents map[string][]byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{repo: filepath.Join(t.TempDir(), "repo"), src: t.TempDir(), contents: map[string][]byte{}}
	var recips []string
	for range 2 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		f.ids = append(f.ids, id)
		recips = append(recips, id.Recipient().String())
	}
	k, err := Init(f.repo, recips)
	if err != nil {
		t.Fatal(err)
	}
	f.key = k
	rng := rand.New(rand.NewPCG(1, 2))
	// Compressible but not repetitive data, big enough for many chunks.
	db := make([]byte, 3<<20)
	for i := range db {
		db[i] = byte('a' + rng.IntN(8))
	}
	f.write(t, "phivault.db", db)
	f.write(t, "kek.json", []byte(`{"format":"phivault-kek-file/1"}`))
	f.write(t, "tls/cert.pem", []byte("-----BEGIN CERTIFICATE-----\n"))
	return f
}

func (f *fixture) write(t *testing.T, name string, b []byte) {
	t.Helper()
	p := filepath.Join(f.src, name)
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f.contents[name] = b
}

func (f *fixture) sources() []Source {
	var s []Source
	for _, n := range []string{"kek.json", "phivault.db", "tls/cert.pem"} {
		s = append(s, Source{Path: n, Local: filepath.Join(f.src, n)})
	}
	return s
}

func (f *fixture) backup(t *testing.T) (*Manifest, Stats) {
	t.Helper()
	r, err := Open(f.repo, f.key)
	if err != nil {
		t.Fatal(err)
	}
	m, st, err := r.Backup(context.Background(), f.sources(), map[string]int64{"versions": 42}, AuditTree{Size: 7, Root: []byte("root")})
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

func (f *fixture) reader(t *testing.T, id age.Identity) *Reader {
	t.Helper()
	r, err := OpenReader(f.repo, []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTripEachRecipient(t *testing.T) {
	f := newFixture(t)
	m, st := f.backup(t)
	if st.Chunks < 10 || st.NewChunks != st.Chunks {
		t.Fatalf("first backup: %+v", st)
	}
	for i, id := range f.ids {
		r := f.reader(t, id)
		got, err := r.Latest()
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.Counts["versions"] != 42 || got.Audit.Size != 7 || string(got.Audit.Root) != "root" {
			t.Fatalf("manifest: %+v", got)
		}
		to := filepath.Join(t.TempDir(), "restored")
		if err := r.Restore(context.Background(), got, to); err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
		for name, want := range f.contents {
			b, err := os.ReadFile(filepath.Join(to, name))
			if err != nil || !bytes.Equal(b, want) {
				t.Fatalf("recipient %d: %s differs (%v)", i, name, err)
			}
		}
	}
}

func TestIncrementalAddsOnlyTheChange(t *testing.T) {
	f := newFixture(t)
	_, first := f.backup(t)
	db := bytes.Clone(f.contents["phivault.db"])
	// Change 1% of the file in one region, as appended versions would.
	copy(db[len(db)/2:], bytes.Repeat([]byte("Z"), len(db)/100))
	f.write(t, "phivault.db", db)
	_, second := f.backup(t)
	ratio := float64(second.NewBytes) / float64(second.Bytes)
	t.Logf("first %d chunks, %d bytes; second adds %d of %d chunks, %d of %d bytes (%.3f)",
		first.Chunks, first.Bytes, second.NewChunks, second.Chunks, second.NewBytes, second.Bytes, ratio)
	if ratio > 0.15 || second.NewChunks == 0 {
		t.Fatalf("incremental backup added %.3f of the data", ratio)
	}
	r := f.reader(t, f.ids[0])
	ids, _ := r.Snapshots()
	if len(ids) != 2 {
		t.Fatalf("%d snapshots", len(ids))
	}
	rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil || !rep.OK() || rep.Good != 2 || rep.ChunksRead != rep.Chunks {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestNothingInTheClear: no file of the repository holds a source's bytes
// or the manifest's facts, and names are random or keyed.
func TestNothingInTheClear(t *testing.T) {
	f := newFixture(t)
	f.write(t, "kek.json", []byte(`{"format":"phivault-kek-file/1","id":"SECRET-MARKER-123"}`))
	f.backup(t)
	filepath.WalkDir(f.repo, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, s := range []string{"SECRET-MARKER", "phivault.db", "kek.json", "versions", "aaaaaaaa"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", p, s)
			}
		}
		if fi, _ := d.Info(); fi.ModTime().Unix() != 0 {
			t.Errorf("%s is dated %v", p, fi.ModTime())
		}
		return nil
	})
}

func TestFilesAreWrittenOnce(t *testing.T) {
	f := newFixture(t)
	if _, err := Init(f.repo, []string{f.ids[0].Recipient().String()}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v", err)
	}
	r, err := Open(f.repo, f.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.writeOnce("config", []byte("x")); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	other, _ := Init(filepath.Join(t.TempDir(), "other"), []string{f.ids[0].Recipient().String()})
	if _, err := Open(f.repo, other); err == nil {
		t.Fatal("another repository's key opened this one")
	}
}

func TestWrongIdentity(t *testing.T) {
	f := newFixture(t)
	f.backup(t)
	stranger, _ := age.GenerateX25519Identity()
	if _, err := OpenReader(f.repo, []age.Identity{stranger}); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("stranger: %v", err)
	}
	// The write key's server identity reads manifests but not chunks.
	srv, _ := f.key.ServerIdentity()
	r := f.reader(t, srv)
	rep, err := r.Verify(context.Background(), VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("metadata verify with the write key: %v %+v", err, rep)
	}
	if _, err := r.Verify(context.Background(), VerifyOptions{ReadData: true}); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("read-data with the write key: %v", err)
	}
	m, _ := r.Latest()
	to := filepath.Join(t.TempDir(), "r")
	if err := r.Restore(context.Background(), m, to); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("restore with the write key: %v", err)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatal("a failed restore left its directory")
	}
}

func TestInvalidRecipient(t *testing.T) {
	if _, err := Init(t.TempDir()+"/r", []string{"age1notakey"}); err == nil || !strings.Contains(err.Error(), "recipient") {
		t.Fatalf("bad recipient: %v", err)
	}
	if _, err := Init(t.TempDir()+"/r", nil); err == nil {
		t.Fatal("no recipients accepted")
	}
}
