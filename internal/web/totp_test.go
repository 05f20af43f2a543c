package web

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
)

// RFC 6238 appendix B, SHA-1 key: 94287082 at T=59 (6 digits: 287082),
// 07081804 at T=1111111109, 14050471 at T=1111111111.
func TestTOTPKnownAnswers(t *testing.T) {
	key := []byte("12345678901234567890")
	for _, tt := range []struct {
		at   int64
		code string
		last int64
		ok   bool
	}{
		{59, "287082", 0, true},
		{59, "287082", 1, false}, // step already used
		{89, "287082", 0, true},  // one step late (skew)
		{119, "287082", 0, false},
		{1111111109, "081804", 0, true},
		{1111111111, "050471", 0, true},
		{1111111111, "050472", 0, false},
	} {
		step, ok := totpStep(key, tt.code, tt.last, time.Unix(tt.at, 0))
		if ok != tt.ok {
			t.Errorf("code %s at %d (last %d) = %v, want %v", tt.code, tt.at, tt.last, ok, tt.ok)
		}
		if ok && step != (tt.at/30)-boolInt(tt.at == 89) {
			t.Errorf("code %s at %d: step %d", tt.code, tt.at, step)
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func TestRecoveryCodes(t *testing.T) {
	shown, hashes := newRecoveryCodes()
	if len(shown) != 10 || len(hashes) != 10 {
		t.Fatalf("%d codes, %d hashes", len(shown), len(hashes))
	}
	seen := map[string]bool{}
	for _, s := range shown {
		kind, norm := parseCode(s)
		if kind != recoveryCode || seen[norm] {
			t.Fatalf("code %q: kind %v, duplicate %v", s, kind, seen[norm])
		}
		seen[norm] = true
	}
	m := &account.MFA{Recovery: hashes}
	if method, err := useCode(m, shown[3], time.Now()); err != nil || method != "recovery" || len(m.Recovery) != 9 {
		t.Fatalf("first use: %q %v, %d left", method, err, len(m.Recovery))
	}
	if _, err := useCode(m, shown[3], time.Now()); err == nil {
		t.Fatal("a recovery code worked twice")
	}
	sum := sha256.Sum256([]byte(seenKey(seen, shown[4])))
	for _, h := range m.Recovery {
		if string(h) == string(sum[:]) {
			return
		}
	}
	t.Error("an unused code's hash was removed")
}

func seenKey(_ map[string]bool, s string) string { _, n := parseCode(s); return n }

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "abcde-fghij", " ABCDE FGHIJ ", "12345", "1234567", "abcde-fghi1", "", "ü23456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, norm := parseCode(s)
		switch kind {
		case totpCode:
			if len(norm) != 6 {
				t.Fatalf("%q: TOTP %q", s, norm)
			}
			for _, c := range norm {
				if c < '0' || c > '9' {
					t.Fatalf("%q: TOTP %q", s, norm)
				}
			}
		case recoveryCode:
			if len(norm) != recoveryLen {
				t.Fatalf("%q: recovery %q", s, norm)
			}
			if k, again := parseCode(norm); k != recoveryCode || again != norm {
				t.Fatalf("%q: normal form %q does not parse to itself", s, norm)
			}
		case badCode:
			if norm != "" {
				t.Fatalf("%q: rejected but normalized to %q", s, norm)
			}
		}
		_, _ = totpStep([]byte("12345678901234567890"), norm, 0, time.Unix(59, 0))
	})
}
