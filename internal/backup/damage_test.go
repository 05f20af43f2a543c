package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chunkFile returns the path of chunk i of the file named name in m.
func (f *fixture) chunkFile(m *Manifest, name string, i int) (string, Chunk) {
	for _, fl := range m.Files {
		if fl.Path == name {
			c := fl.Chunks[i]
			return filepath.Join(f.repo, chunkPath(c.ID)), c
		}
	}
	panic("no file " + name)
}

// damage replaces a write-once (read-only) file as an attacker with write
// access to the directory could.
func damage(t *testing.T, p string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if edit != nil {
		if err := os.WriteFile(p, edit(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func flip(at int) func([]byte) []byte {
	return func(b []byte) []byte { b[at%len(b)] ^= 0x01; return b }
}

func TestDamageIsNamed(t *testing.T) {
	tests := []struct {
		name     string
		readData bool // needed to see the damage
		harm     func(t *testing.T, f *fixture, m *Manifest) (file string, chunk int)
		want     string
	}{
		{"flipped byte in a chunk", true, func(t *testing.T, f *fixture, m *Manifest) (string, int) {
			p, c := f.chunkFile(m, "phivault.db", 3)
			damage(t, p, flip(int(c.Stored)-40))
			return "phivault.db", 3
		}, "damaged"},
		{"deleted chunk", false, func(t *testing.T, f *fixture, m *Manifest) (string, int) {
			p, _ := f.chunkFile(m, "phivault.db", 5)
			damage(t, p, nil)
			return "phivault.db", 5
		}, "chunk missing"},
		{"truncated chunk", false, func(t *testing.T, f *fixture, m *Manifest) (string, int) {
			p, _ := f.chunkFile(m, "kek.json", 0)
			damage(t, p, func(b []byte) []byte { return b[:len(b)-1] })
			return "kek.json", 0
		}, "the manifest says"},
		{"chunk swapped for another", true, func(t *testing.T, f *fixture, m *Manifest) (string, int) {
			p, _ := f.chunkFile(m, "phivault.db", 2)
			q, _ := f.chunkFile(m, "phivault.db", 1)
			other, _ := os.ReadFile(q)
			damage(t, p, func([]byte) []byte { return other })
			return "phivault.db", 2
		}, "damaged"},
		{"edited manifest", false, func(t *testing.T, f *fixture, m *Manifest) (string, int) {
			damage(t, filepath.Join(f.repo, "snapshots", m.ID), flip(300))
			return "", -1
		}, "damaged"},
		{"manifest of another repository", false, func(t *testing.T, f *fixture, m *Manifest) (string, int) {
			// Sealed to the same public recipients, MACed under another key.
			g := *f
			g.repo = filepath.Join(t.TempDir(), "other")
			k, err := Init(g.repo, f.key.Recips)
			if err != nil {
				t.Fatal(err)
			}
			g.key = k
			m2, _ := g.backup(t)
			forged, _ := os.ReadFile(filepath.Join(g.repo, "snapshots", m2.ID))
			damage(t, filepath.Join(f.repo, "snapshots", m.ID), func([]byte) []byte { return forged })
			return "", -1
		}, "MAC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			m, _ := f.backup(t)
			file, chunk := tc.harm(t, f, m)
			r := f.reader(t, f.ids[1])
			rep, err := r.Verify(context.Background(), VerifyOptions{ReadData: tc.readData})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Damage) != 1 || rep.Good != 0 {
				t.Fatalf("verify: want one damaged item, got %+v", rep)
			}
			d := rep.Damage[0]
			if d.Snapshot != m.ID || d.File != file || d.Chunk != chunk || !strings.Contains(d.Error(), tc.want) {
				t.Fatalf("verify named %q (file %q chunk %d), want file %q chunk %d and %q", d, d.File, d.Chunk, file, chunk, tc.want)
			}
			to := filepath.Join(t.TempDir(), "restored")
			var rerr error
			if mm, err := r.Manifest(m.ID); err != nil {
				rerr = err
			} else {
				rerr = r.Restore(context.Background(), mm, to)
			}
			if !errors.Is(rerr, ErrDamaged) {
				t.Fatalf("restore of a damaged snapshot: %v", rerr)
			}
			if _, err := os.Stat(to); !os.IsNotExist(err) {
				t.Fatal("a failed restore left files behind")
			}
		})
	}
}

func TestSubsetReadsPartOfTheChunks(t *testing.T) {
	f := newFixture(t)
	f.backup(t)
	rep, err := f.reader(t, f.ids[0]).Verify(context.Background(), VerifyOptions{ReadData: true, Subset: 0.3})
	if err != nil || !rep.OK() {
		t.Fatal(err, rep)
	}
	if rep.ChunksRead == 0 || rep.ChunksRead >= rep.Chunks {
		t.Fatalf("subset 30%% read %d of %d chunks", rep.ChunksRead, rep.Chunks)
	}
}
