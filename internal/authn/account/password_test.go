package account

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/argon2"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name, id string
		pw       string
		ok       bool
		why      string // part of the message
	}{
		{"long random words", "alice", "violet-otter-trombone-42", true, ""},
		{"exactly 12 characters", "alice", "kq7#Vd2!pZ9m", true, ""},
		{"11 characters", "alice", "kq7#Vd2!pZ9", false, "at least 12"},
		{"empty", "alice", "", false, "at least 12"},
		{"12 runes, 24 bytes (runes count, not bytes)", "alice", "ŁódźŻółćĘąśńÓ"[:0] + "ąęółśżźćńĄĘÓ", true, ""},
		{"11 runes of 2 bytes each (22 bytes)", "alice", "ąęółśżźćńĄĘ", false, "at least 12"},
		{"1024 bytes", "alice", strings.Repeat("xk9", 341) + "q", true, ""},
		{"1025 bytes", "alice", strings.Repeat("xk9", 341) + "qq", false, "longer than 1024"},
		{"common, from the list", "alice", "password1234", false, "common"},
		{"common, other case", "alice", "PassWord1234", false, "common"},
		{"common keyboard walk", "alice", "qwertyuiop123", false, "common"},
		{"contains the user id", "alice", "alice-is-the-best-2026", false, "user id"},
		{"contains the user id, other case", "alice", "my name is ALICE!!", false, "user id"},
		{"equals the user id", "long.user.name", "long.user.name", false, "user id"},
		{"invalid UTF-8", "alice", "abcdefghijk\xff", false, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPassword(tt.id, Password(tt.pw))
			if (err == nil) != tt.ok {
				t.Fatalf("CheckPassword(%q) = %v, want ok=%v", tt.pw, err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrWeakPassword) || !strings.Contains(err.Error(), tt.why)) {
				t.Errorf("error %q: want ErrWeakPassword saying %q", err, tt.why)
			}
		})
	}
}

// The shipped list is real: sorted (binary search relies on it), lower
// case, and large.
func TestCommonListShape(t *testing.T) {
	l := commonList()
	if len(l) < 40_000 {
		t.Fatalf("list has %d entries, want tens of thousands", len(l))
	}
	for i, p := range l {
		if p != strings.ToLower(p) || len([]rune(p)) < MinPasswordRunes || (i > 0 && l[i-1] >= p) {
			t.Fatalf("entry %d %q: not lower case, too short or out of order", i, p)
		}
	}
}

func TestHashFormat(t *testing.T) {
	d := &Directory{}
	var seen []argonParams
	d.onHash = func(p argonParams) { seen = append(seen, p) }
	h := d.hashPassword(goodPW, defaultArgon)
	if !strings.HasPrefix(h, fmt.Sprintf("$argon2id$v=%d$m=19456,t=2,p=1$", argon2.Version)) {
		t.Fatalf("hash %q: want PHC argon2id with OWASP parameters m=19456,t=2,p=1", h)
	}
	p, salt, key, err := parsePHC(h)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaultArgon, p); diff != "" {
		t.Error(diff)
	}
	if len(salt) != 16 || len(key) != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", len(salt), len(key))
	}
	// Known answer: the stored key is Argon2id(pw, salt) with those parameters.
	if want := argon2.IDKey([]byte(goodPW), salt, 2, 19456, 1, 32); !cmp.Equal(key, want) {
		t.Error("stored key is not Argon2id of the password")
	}
	if !d.verify(goodPW, h) || d.verify(goodPW+"x", h) {
		t.Error("verify does not tell the right password from a wrong one")
	}
	if h2 := d.hashPassword(goodPW, defaultArgon); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if len(seen) != 4 || seen[0] != defaultArgon {
		t.Errorf("hash calls %v", seen)
	}
}

func TestParsePHCRejects(t *testing.T) {
	good := formatPHC(testArgon, make([]byte, 16), make([]byte, 32))
	if _, _, _, err := parsePHC(good); err != nil {
		t.Fatalf("good hash %q: %v", good, err)
	}
	bad := []string{
		"",
		strings.Replace(good, "argon2id", "argon2i", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=64", "m=4294967295", 1), // 4 TiB: a hostile record
		strings.Replace(good, "t=1", "t=1000", 1),
		strings.Replace(good, "p=1", "p=0", 1),
		strings.Replace(good, "m=64,t=1", "t=1,m=64", 1),
		strings.Replace(good, "m=64", "m=064", 1),
		strings.Replace(good, "m=64", "m=4", 1), // less than 8 KiB per lane
		good + "$",
		formatPHC(testArgon, make([]byte, 16), make([]byte, 8)), // key too short
		formatPHC(testArgon, make([]byte, 4), make([]byte, 32)), // salt too short
		strings.TrimSuffix(good, "A") + "B",                     // non-canonical base64
		strings.Replace(good, "$AAAA", "$!AAA", 1),
	}
	for _, s := range bad {
		if _, _, _, err := parsePHC(s); err == nil {
			t.Errorf("parsePHC(%q) accepted", s)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add(formatPHC(defaultArgon, make([]byte, 16), make([]byte, 32)))
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.Memory > maxMemory || p.Time > maxTime || p.Threads > maxThreads || p.Time == 0 || p.Threads == 0 {
			t.Fatalf("accepted parameters out of bounds: %+v", p)
		}
		if again := formatPHC(p, salt, key); again != s {
			t.Fatalf("not canonical: %q formats back as %q", s, again)
		}
	})
}

func FuzzCheckPassword(f *testing.F) {
	f.Add("alice", "violet-otter-trombone-42")
	f.Add("", "password1234")
	f.Fuzz(func(t *testing.T, id, pw string) {
		err := CheckPassword(id, Password(pw))
		if err != nil && !errors.Is(err, ErrWeakPassword) {
			t.Fatalf("error %v does not wrap ErrWeakPassword", err)
		}
		if err == nil && (len(pw) > MaxPasswordBytes || len([]rune(pw)) < MinPasswordRunes || isCommon(pw)) {
			t.Fatalf("accepted %q", pw)
		}
	})
}

func FuzzValidID(f *testing.F) {
	f.Add("alice")
	f.Add("dr.smith@example.org")
	f.Fuzz(func(t *testing.T, id string) {
		if ValidID(id) != nil {
			return
		}
		if len(id) > 128 || strings.ContainsAny(id, " \t\r\n/,=:") {
			t.Fatalf("accepted %q", id)
		}
	})
}
