package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// FIPS 197, section 4.2: {57} x {83} = {c1}, {57} x {13} = {fe}; {53} and
// {ca} are inverses (section 5.1.1).
func TestGFKnownAnswers(t *testing.T) {
	for _, c := range []struct{ a, b, want byte }{{0x57, 0x83, 0xc1}, {0x57, 0x13, 0xfe}, {0x53, 0xca, 0x01}, {0, 0x13, 0}} {
		if got := gfMul(c.a, c.b); got != c.want {
			t.Errorf("gfMul(%#x, %#x) = %#x; want %#x", c.a, c.b, got, c.want)
		}
	}
	for a := range 256 {
		for b := range 256 {
			if gfMul(byte(a), byte(b)) != gfMulSlow(byte(a), byte(b)) {
				t.Fatalf("table and bitwise multiplication differ at %#x, %#x", a, b)
			}
			if b != 0 && gfMul(gfDiv(byte(a), byte(b)), byte(b)) != byte(a) {
				t.Fatalf("division is not the inverse of multiplication at %#x, %#x", a, b)
			}
		}
	}
}

// f(x) = 0x53 + 0xca x: f(1) = 0x99, f(2) = 0x53 ^ (0xca x 2) = 0x53 ^ 0x8f = 0xdc.
func TestCombineKnownAnswer(t *testing.T) {
	got, err := shamirCombine([][]byte{{1, 0x99}, {2, 0xdc}})
	if err != nil || !bytes.Equal(got, []byte{0x53}) {
		t.Errorf("combine = %x, %v; want 53", got, err)
	}
	got, _ = shamirCombine([][]byte{{2, 0xdc}, {1, 0x99}})
	if !bytes.Equal(got, []byte{0x53}) {
		t.Errorf("combine in other order = %x; want 53", got)
	}
}

// Any threshold of the shares recovers the secret; fewer do not (with
// overwhelming probability for a 32-byte secret).
func TestSplitCombineProperties(t *testing.T) {
	for _, c := range []struct{ n, k int }{{2, 2}, {3, 2}, {5, 3}, {7, 4}, {10, 10}} {
		secret := make([]byte, 32)
		rand.Read(secret)
		shares, err := shamirSplit(secret, c.n, c.k)
		if err != nil {
			t.Fatal(err)
		}
		for mask := 0; mask < 1<<c.n; mask++ {
			var pick [][]byte
			for i := range c.n {
				if mask&(1<<i) != 0 {
					pick = append(pick, shares[i])
				}
			}
			if len(pick) < 2 {
				continue
			}
			got, err := shamirCombine(pick)
			if err != nil {
				t.Fatal(err)
			}
			if ok := bytes.Equal(got, secret); ok != (len(pick) >= c.k) {
				t.Fatalf("%d of %d (threshold %d): recovered = %v", len(pick), c.n, c.k, ok)
			}
		}
	}
	for _, c := range []struct{ n, k int }{{5, 1}, {2, 3}, {256, 3}} {
		if _, err := shamirSplit([]byte{1}, c.n, c.k); err == nil {
			t.Errorf("split %d of %d succeeded", c.k, c.n)
		}
	}
	if _, err := shamirCombine([][]byte{{1, 2}, {1, 3}}); err == nil {
		t.Error("combine with a repeated x succeeded")
	}
}

func TestShareText(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, _ := shamirSplit(secret, 3, 2)
	s := encodeShare(2, shares[0])
	if !strings.HasPrefix(string(s), "pvs1-") {
		t.Fatalf("share text %q", s)
	}
	th, got, err := decodeShare("  " + strings.ToUpper(string(s[:20])) + "\n" + string(s[20:]) + " ")
	if err != nil || th != 2 || !bytes.Equal(got, shares[0]) {
		t.Fatalf("decode = %d, %x, %v", th, got, err)
	}
	// Every single-character typo is caught by the check.
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for i := len("pvs1-"); i < len(s); i++ {
		for _, r := range alphabet {
			if byte(r) == s[i] {
				continue
			}
			typo := string(s[:i]) + string(r) + string(s[i+1:])
			if _, _, err := decodeShare(typo); !errors.Is(err, ErrMalformedShare) {
				t.Fatalf("typo at %d (%c) accepted: %v", i, r, err)
			}
		}
	}
	for _, bad := range []string{"", "pvs1-", "pvs2-" + string(s[5:]), string(s[:len(s)-3]), "pvs1-!!!!"} {
		if _, _, err := decodeShare(bad); !errors.Is(err, ErrMalformedShare) {
			t.Errorf("decodeShare(%q) = %v; want ErrMalformedShare", bad, err)
		}
	}
	if fmtd := strings.Contains((&struct{ S Secret }{s}).S.String(), "pvs1"); fmtd {
		t.Error("a share prints itself")
	}
}

func FuzzDecodeShare(f *testing.F) {
	secret := make([]byte, 32)
	shares, _ := shamirSplit(secret, 3, 2)
	f.Add(string(encodeShare(2, shares[0])))
	f.Add("pvs1-aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		th, sh, err := decodeShare(s)
		if err == nil && (th < 2 || len(sh) < 2 || sh[0] == 0) {
			t.Fatalf("accepted a bad share: %d %x", th, sh)
		}
	})
}
