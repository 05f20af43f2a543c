package authn

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

type env struct {
	dir string
	st  *sqlite.Backend
	b   *barrier.Barrier
	kek *keys.File
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	kp := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(context.Background(), kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, st: st, b: b, kek: kek}
}

func (e *env) tokens(t *testing.T) *Tokens {
	t.Helper()
	tk, err := OpenTokens(context.Background(), e.st, e.b)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func mint(t *testing.T, tk *Tokens, user string, roles []string, ttl time.Duration) string {
	t.Helper()
	tok, _, err := tk.Mint(user, roles, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

func TestMintCheck(t *testing.T) {
	tk := newEnv(t).tokens(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tk.now = func() time.Time { return now }
	tok, exp, err := tk.Mint("alice", []string{"administrator", "auditor"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("expiry %v, want %v", exp, now.Add(time.Hour))
	}
	p, err := tk.Check(tok.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Principal{UserID: "alice", Roles: []string{"administrator", "auditor"}, Method: "operator-token"}
	if !strings.HasPrefix(p.SessionID, "op:") || len(p.SessionID) < 10 {
		t.Errorf("session id %q: want op: and the token's unique id, for audit and revocation", p.SessionID)
	}
	want.SessionID = p.SessionID
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
	tok2 := mint(t, tk, "alice", []string{"administrator"}, time.Hour)
	if tok2 == tok.Reveal() {
		t.Error("two tokens minted at the same instant are equal (no unique id)")
	}
}

func TestExpiry(t *testing.T) {
	tk := newEnv(t).tokens(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tk.now = func() time.Time { return now }
	tok := mint(t, tk, "bob", []string{"administrator"}, 10*time.Minute)
	for _, tt := range []struct {
		at     time.Duration
		wantOK bool
	}{
		{0, true},
		{10*time.Minute - time.Second, true},
		{10 * time.Minute, false},
		{10*time.Minute + time.Second, false},
		{24 * time.Hour, false},
	} {
		tk.now = func() time.Time { return now.Add(tt.at) }
		_, err := tk.Check(tok)
		if tt.wantOK && err != nil {
			t.Errorf("at +%v: %v, want valid", tt.at, err)
		}
		if !tt.wantOK && !errors.Is(err, ErrInvalidToken) {
			t.Errorf("at +%v: %v, want ErrInvalidToken", tt.at, err)
		}
	}
}

// TestEveryCharacterMatters changes each character of a token to every
// other base64url character: none of them may still validate.
func TestEveryCharacterMatters(t *testing.T) {
	tk := newEnv(t).tokens(t)
	tok := mint(t, tk, "carol", []string{"administrator"}, time.Hour)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	for i := range len(tok) {
		for _, c := range alphabet {
			if byte(c) == tok[i] {
				continue
			}
			bad := tok[:i] + string(c) + tok[i+1:]
			if p, err := tk.Check(bad); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("token with char %d changed %q->%q accepted as %+v", i, tok[i], c, p)
			}
		}
	}
	for _, bad := range []string{tok + "A", tok[:len(tok)-1], tok + ".", " " + tok} {
		if _, err := tk.Check(bad); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Check(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}
}

func TestOtherStoreKey(t *testing.T) {
	a, b := newEnv(t).tokens(t), newEnv(t).tokens(t)
	tok := mint(t, a, "dave", []string{"administrator"}, time.Hour)
	if _, err := b.Check(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of another store accepted: %v", err)
	}
}

func TestForgedClaims(t *testing.T) {
	tk := newEnv(t).tokens(t)
	tok := mint(t, tk, "eve", []string{"clinician"}, time.Hour)
	payload, sig, _ := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := bytes.Replace(raw, []byte(`"clinician"`), []byte(`"administrator"`), 1)
	bad := tokenPrefix + base64.RawURLEncoding.EncodeToString(forged) + "." + sig
	if _, err := tk.Check(bad); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token with forged roles accepted: %v", err)
	}
	// A correctly signed token whose claims lack a subject is refused.
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"roles":["administrator"],"exp":99999999999}`))
	nosub := tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(tk.mac(p))
	if _, err := tk.Check(nosub); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token without subject accepted: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	tk := newEnv(t).tokens(t)
	good := mint(t, tk, "frank", []string{"administrator"}, time.Hour)
	for name, in := range map[string]string{
		"empty":        "",
		"prefix only":  tokenPrefix,
		"no prefix":    strings.TrimPrefix(good, tokenPrefix),
		"other prefix": "pv2." + strings.TrimPrefix(good, tokenPrefix),
		"bearer":       "Bearer " + good,
		"no signature": strings.Split(good, ".")[0] + "." + strings.Split(good, ".")[1],
		"garbage":      "pv1.!!!.???",
		"dots":         "pv1...",
		"not json":     tokenPrefix + "bm90IGpzb24." + "AAAA",
		"huge":         tokenPrefix + strings.Repeat("A", 1<<20) + ".AAAA",
		"huge valid":   good + strings.Repeat("A", 5000),
		"nul":          good[:10] + "\x00" + good[11:],
	} {
		if _, err := tk.Check(in); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Check = %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestTTLBounds(t *testing.T) {
	tk := newEnv(t).tokens(t)
	for _, tt := range []struct {
		user  string
		roles []string
		ttl   time.Duration
		ok    bool
	}{
		{"u", []string{"administrator"}, time.Second, true},
		{"u", []string{"administrator"}, 30 * 24 * time.Hour, true},
		{"u", []string{"administrator"}, 30*24*time.Hour + time.Second, false},
		{"u", []string{"administrator"}, 0, false},
		{"u", []string{"administrator"}, -time.Hour, false},
		{"", []string{"administrator"}, time.Hour, false},
		{"u", nil, time.Hour, false},
	} {
		tok, _, err := tk.Mint(tt.user, tt.roles, tt.ttl)
		if (err == nil) != tt.ok {
			t.Errorf("Mint(%q, %v, %v) error = %v, want ok=%v", tt.user, tt.roles, tt.ttl, err, tt.ok)
		}
		if err != nil && tok != "" {
			t.Errorf("Mint(%q, %v, %v) returned a token with its error", tt.user, tt.roles, tt.ttl)
		}
	}
}

func TestTokenRedacted(t *testing.T) {
	tk := newEnv(t).tokens(t)
	tok, _, err := tk.Mint("grace", []string{"administrator"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.Split(tok.Reveal(), ".")[2]
	var outs []string
	for _, verb := range []string{"%v", "%s", "%#v", "%+v"} {
		outs = append(outs, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, struct{ T Token }{tok}))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("minted", "token", tok)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("minted", "token", tok)
	outs = append(outs, buf.String(), tok.String(), fmt.Sprint(tok))
	for _, out := range outs {
		if strings.Contains(out, secret) || !strings.Contains(out, "redacted") {
			t.Errorf("token printed as %q", out)
		}
	}
	if tok.Reveal() == "" || !strings.HasPrefix(tok.Reveal(), tokenPrefix) {
		t.Errorf("Reveal = %q", tok.Reveal())
	}
}

func TestOpenTokensReusesSealedKey(t *testing.T) {
	e := newEnv(t)
	first := e.tokens(t)
	tok := mint(t, first, "heidi", []string{"administrator"}, time.Hour)
	second := e.tokens(t)
	if _, err := second.Check(tok); err != nil {
		t.Fatalf("token minted before reopening rejected: %v", err)
	}
	// Through a fresh barrier too (no cached keys), as after a restart.
	b2, err := barrier.Open(context.Background(), e.kek, e.st, 100)
	if err != nil {
		t.Fatal(err)
	}
	third, err := OpenTokens(context.Background(), e.st, b2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.key, third.key) || len(first.key) != 32 {
		t.Fatal("reopened token key differs")
	}
	var kvs []store.KV
	if err := e.st.View(context.Background(), func(r store.Reader) error {
		kvs, err = r.MetaPrefix("")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sealedFound := false
	for _, kv := range kvs {
		if bytes.Contains(kv.Value, first.key) || strings.Contains(string(kv.Value), base64.StdEncoding.EncodeToString(first.key)) {
			t.Errorf("meta %q holds the raw token key", kv.Key)
		}
		if kv.Key == tokenKeyMeta {
			sealedFound = true
			if _, err := barrier.KeyIDOf(kv.Value); err != nil {
				t.Errorf("stored token key is not a sealed value: %v", err)
			}
		}
	}
	if !sealedFound {
		t.Errorf("no %s entry in the store", tokenKeyMeta)
	}
	e.st.Close()
	files, _ := filepath.Glob(filepath.Join(e.dir, "db", "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if bytes.Contains(data, first.key) {
			t.Errorf("%s holds the raw token key", filepath.Base(f))
		}
	}
}

// TestCheckRemembersClaimsSafely: a token checked again (its claims now
// remembered) gives the same principal even after a caller changed the
// roles it was handed, and a forged MAC on the same payload is still
// refused.
func TestCheckRemembersClaimsSafely(t *testing.T) {
	tk := newEnv(t).tokens(t)
	tok := mint(t, tk, "alice", []string{"administrator", "auditor"}, time.Hour)
	first, err := tk.Check(tok)
	if err != nil {
		t.Fatal(err)
	}
	first.Roles[0] = "operator"
	again, err := tk.Check(tok)
	if err != nil {
		t.Fatal(err)
	}
	if again.Roles[0] != "administrator" || again.UserID != "alice" {
		t.Errorf("second check: %+v; a caller's change to the first principal leaked into it", again)
	}
	payload, _, _ := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	forged := tokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	if _, err := tk.Check(forged); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the remembered payload under a forged MAC: %v, want ErrInvalidToken", err)
	}
}

// BenchmarkCheck measures checking one operator token again and again,
// as the FHIR API does for a script's or an app's requests.
func BenchmarkCheck(b *testing.B) {
	e := newEnvB(b)
	tk, err := OpenTokens(context.Background(), e.st, e.b)
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := tk.Mint("alice", []string{"administrator"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tk.Check(tok.Reveal()); err != nil {
			b.Fatal(err)
		}
	}
}
