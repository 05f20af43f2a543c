package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/barrier"
)

func splitFile(t *testing.T, pass Secret) (string, []Secret, barrier.Wrapped) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek.json")
	if err := CreateFile(path, pass); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, pass)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.Wrap(context.Background(), []byte("0123456789abcdef0123456789abcdef"))
	shares, err := f.Split(5, 3)
	if err != nil {
		t.Fatal(err)
	}
	return path, shares, w
}

func TestShamirUnseal(t *testing.T) {
	for _, pass := range []Secret{nil, Secret("correct horse")} {
		path, shares, w := splitFile(t, pass)
		if kind, th, n, err := Protection(path); kind != "shamir" || th != 3 || n != 5 || err != nil {
			t.Fatalf("Protection = %s %d %d %v", kind, th, n, err)
		}
		if _, err := OpenFile(path, pass); !errors.Is(err, ErrNeedShares) {
			t.Errorf("OpenFile of a split file = %v; want ErrNeedShares", err)
		}
		data, _ := os.ReadFile(path)
		for _, s := range shares {
			if strings.Contains(string(data), string(s)) {
				t.Fatal("a share is stored in the key file")
			}
		}
		// Every 3 of the 5 open it, and the KEK is the same as before.
		for a := range 5 {
			for b := a + 1; b < 5; b++ {
				for c := b + 1; c < 5; c++ {
					f, err := OpenFileShares(path, []Secret{shares[c], shares[a], shares[b]})
					if err != nil {
						t.Fatalf("shares %d,%d,%d: %v", a, b, c, err)
					}
					if dek, err := f.Unwrap(context.Background(), w); err != nil || string(dek) != "0123456789abcdef0123456789abcdef" {
						t.Fatalf("after split the KEK changed: %v", err)
					}
				}
			}
		}
		if _, err := OpenFileShares(path, shares[:2]); err == nil {
			t.Error("2 of 5 shares opened the file")
		}
	}
}

func TestUnsealer(t *testing.T) {
	path, shares, _ := splitFile(t, nil)
	u := NewUnsealer(path)
	for i, want := range []int{1, 2} {
		have, need, f, err := u.Add(shares[i])
		if err != nil || have != want || need != 3 || f != nil {
			t.Fatalf("Add %d = %d/%d %v %v", i, have, need, f, err)
		}
	}
	if have, _, _, err := u.Add(shares[1]); !errors.Is(err, ErrDuplicateShare) || have != 2 {
		t.Errorf("duplicate share: %d %v", have, err)
	}
	if have, _, _, err := u.Add(Secret(string(shares[2][:20]) + "x" + string(shares[2][21:]))); !errors.Is(err, ErrMalformedShare) || have != 2 {
		t.Errorf("typo'd share: %d %v; want ErrMalformedShare and still 2", have, err)
	}
	if _, _, f, err := u.Add(shares[4]); err != nil || f == nil {
		t.Fatalf("third share: %v", err)
	}

	// A well-formed share of another split is only found at the threshold,
	// fails closed, and the shares are forgotten.
	_, other, _ := splitFile(t, nil)
	u.Add(shares[0])
	u.Add(other[1])
	_, _, f, err := u.Add(shares[2])
	if !errors.Is(err, ErrWrongShares) || f != nil {
		t.Fatalf("wrong share: %v, %v; want ErrWrongShares", f, err)
	}
	if msg := err.Error(); strings.Contains(msg, "2") || strings.Contains(msg, "share 1") {
		t.Errorf("the error names a share: %q", msg)
	}
	if have, _, _, _ := u.Add(shares[0]); have != 1 {
		t.Errorf("after a failed unseal the unsealer still held shares (%d)", have)
	}
	u.Reset()
	if _, _, f, err := u.Add(shares[0]); f != nil || err != nil {
		t.Fatal(err)
	}
}

func TestRotateRetire(t *testing.T) {
	ctx := context.Background()
	for _, pass := range []Secret{nil, Secret("pw")} {
		path := filepath.Join(t.TempDir(), "kek.json")
		CreateFile(path, pass)
		f, _ := OpenFile(path, pass)
		w1, _ := f.Wrap(ctx, make([]byte, 32))
		v, err := f.Rotate()
		if err != nil || v != 2 || f.Current() != f.KEKName(2) {
			t.Fatalf("Rotate = %d, %v; current %s", v, err, f.Current())
		}
		w2, _ := f.Wrap(ctx, make([]byte, 32))
		if w2.KEK != f.KEKName(2) || w1.KEK != f.KEKName(1) {
			t.Fatalf("wrap names %s, %s", w1.KEK, w2.KEK)
		}
		if err := f.Retire(2); err == nil {
			t.Error("retired the current version")
		}
		// Reopened, the file has both versions, still under the passphrase.
		g, err := OpenFile(path, pass)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Unwrap(ctx, w1); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Unwrap(ctx, w2); err != nil {
			t.Fatal(err)
		}
		if len(pass) > 0 {
			if _, err := OpenFile(path, Secret("nope")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("rotated file opens with a wrong passphrase: %v", err)
			}
		}
		if err := g.Retire(1); err != nil {
			t.Fatal(err)
		}
		h, _ := OpenFile(path, pass)
		if _, err := h.Unwrap(ctx, w1); !errors.Is(err, ErrUnknownKEK) {
			t.Errorf("retired version still unwraps: %v", err)
		}
		if vs := h.Versions(); len(vs) != 1 || vs[0] != 2 {
			t.Errorf("versions %v", vs)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v", st.Mode())
		}
	}
}

func TestSealable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kek.json")
	CreateFile(path, nil)
	f, _ := OpenFile(path, nil)
	s := NewSealable(f)
	w, err := s.Wrap(ctx, make([]byte, 32))
	if err != nil || s.Current() != f.Current() {
		t.Fatal(err)
	}
	s.Seal()
	if _, err := s.Unwrap(ctx, w); !errors.Is(err, ErrSealed) {
		t.Errorf("Unwrap while sealed = %v", err)
	}
	if _, err := s.Wrap(ctx, make([]byte, 32)); !errors.Is(err, ErrSealed) || !s.Sealed() {
		t.Errorf("Wrap while sealed = %v", err)
	}
	s.Unseal(f)
	if _, err := s.Unwrap(ctx, w); err != nil {
		t.Error(err)
	}
}
