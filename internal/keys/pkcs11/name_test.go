package pkcs11

import (
	"errors"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/keys"
)

func TestPKCS11KEKName(t *testing.T) {
	for _, c := range []struct {
		in         string
		token, key string
		version    int
		ok         bool
	}{
		{"pkcs11:hsm1:phivault-kek:1", "hsm1", "phivault-kek", 1, true},
		{"pkcs11:a b:k:42", "a b", "k", 42, true},
		{"file:0011223344556677:1", "", "", 0, false},
		{"pkcs11:hsm1:kek:0", "", "", 0, false},
		{"pkcs11:hsm1:kek:01", "", "", 0, false},
		{"pkcs11:hsm1:kek:-1", "", "", 0, false},
		{"pkcs11:hsm1:kek", "", "", 0, false},
		{"pkcs11::kek:1", "", "", 0, false},
		{"pkcs11:hsm1:a:b:1", "", "", 0, false},
		{"PKCS11:hsm1:kek:1", "", "", 0, false},
	} {
		token, key, v, ok := ParseKEKName(c.in)
		if token != c.token || key != c.key || v != c.version || ok != c.ok {
			t.Errorf("ParseKEKName(%q) = %q, %q, %d, %v; want %q, %q, %d, %v", c.in, token, key, v, ok, c.token, c.key, c.version, c.ok)
		}
	}
}

func TestPKCS11ConfigValidate(t *testing.T) {
	good := Config{Module: "/m.so", Token: "t", Key: "k", PIN: keys.Secret("1234")}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{Token: "a:b", Key: strings.Repeat("k", 33)}.Validate()
	for _, want := range []string{"no module", "token label", "key label", "no PIN"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of a bad config = %v; want it to mention %q", err, want)
		}
	}
	if errors.Is(err, ErrNotBuiltIn) {
		t.Error("a config error is not ErrNotBuiltIn")
	}
}

// FuzzParseKEKName: no panic, and every name it accepts is one KEKName makes.
func FuzzParseKEKName(f *testing.F) {
	f.Add("pkcs11:hsm1:phivault-kek:1")
	f.Add("file:00:1")
	f.Add("pkcs11:::")
	f.Fuzz(func(t *testing.T, s string) {
		token, key, v, ok := ParseKEKName(s)
		if ok && KEKName(token, key, v) != s {
			t.Fatalf("ParseKEKName(%q) accepted a name KEKName spells %q", s, KEKName(token, key, v))
		}
	})
}
