package sso

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/authn/account"
)

func validConfig() Config {
	return Config{
		Issuer:       "https://idp.example.org/realms/hospital",
		ClientID:     "phivault",
		ClientSecret: account.Secret("s3cr3t-value"),
		RedirectURL:  "https://phivault.example.org/sso/callback",
		RoleMap:      map[string][]string{"clinicians": {"physician"}},
		CookieKey:    account.Secret(strings.Repeat("k", 32)),
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	bad := Config{
		Issuer:       "http://idp.example.org",
		RedirectURL:  "https://phivault.example.org/elsewhere",
		Scopes:       []string{"openid profile"},
		RoleMap:      map[string][]string{"a": {"wizard"}, "b": {"administrator", "nurse"}, "c": nil},
		CookieKey:    account.Secret("short"),
		LoginTimeout: 2 * time.Hour,
		Landing:      "https://evil.example/",
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("broken config accepted")
	}
	// Every problem is reported at once.
	for _, want := range []string{
		"issuer must be an https URL",
		"client id is required",
		"client secret is required",
		"redirect URL must be an https URL ending in /sso/callback",
		`scope "openid profile"`,
		`"a" maps to unknown role "wizard"`,
		`"b": the administrator role may not be held with a patient-data role`,
		`"c" maps to no role`,
		"cookie key must be at least 32 bytes",
		"login timeout",
		"landing must be a local path",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() does not report %q; got:\n%v", want, err)
		}
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "role map is empty") {
		t.Errorf("empty config: %v", err)
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	c := validConfig()
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", c, "secret", c.ClientSecret)
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "kkkk") {
			t.Errorf("a secret printed: %s", s)
		}
	}
}

func TestMapRoles(t *testing.T) {
	c := Config{RoleMap: map[string][]string{
		"clinicians": {"physician"},
		"er":         {"physician", "nurse"},
		"ops":        {"administrator"},
		"legacy":     {"superuser"}, // unknown roles never pass (Validate refuses them too)
	}}
	tests := []struct {
		claim any
		want  []string
	}{
		{"clinicians", []string{"physician"}},
		{[]any{"er", "clinicians", "choir"}, []string{"nurse", "physician"}},
		{[]any{"legacy"}, nil},
		{[]any{"Clinicians"}, nil}, // values match exactly
		{[]any{42, "ops", nil}, []string{"administrator"}},
		{map[string]any{"clinicians": true}, nil},
		{nil, nil},
		{"", nil},
	}
	for _, tc := range tests {
		if got := c.mapRoles(claimStrings(tc.claim)); !cmp.Equal(got, tc.want) {
			t.Errorf("mapRoles(%v) = %v, want %v", tc.claim, got, tc.want)
		}
	}
}

func TestRoleMix(t *testing.T) {
	tests := []struct {
		roles []string
		ok    bool
	}{
		{[]string{"administrator"}, true},
		{[]string{"administrator", "security-officer", "auditor"}, true},
		{[]string{"administrator", "physician"}, false},
		{[]string{"patient", "administrator"}, false},
		{[]string{"physician", "nurse"}, true},
	}
	for _, tc := range tests {
		if got := checkRoleMix(tc.roles) == nil; got != tc.ok {
			t.Errorf("checkRoleMix(%v) ok = %v, want %v", tc.roles, got, tc.ok)
		}
	}
}

func TestMFAFromAMR(t *testing.T) {
	tests := []struct {
		amr  []string
		want bool
	}{
		{nil, false},
		{[]string{"pwd"}, false},
		{[]string{"pwd", "otp"}, true},
		{[]string{"hwk"}, true},
		{[]string{"swk", "pwd"}, true},
		{[]string{"pop"}, true},
		{[]string{"mfa"}, true},
		{[]string{"face", "pin"}, false},
		{[]string{"OTP"}, false}, // RFC 8176 values are case-sensitive
	}
	for _, tc := range tests {
		if got := mfaFromAMR(tc.amr); got != tc.want {
			t.Errorf("mfaFromAMR(%v) = %v, want %v", tc.amr, got, tc.want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	tests := map[string]bool{
		"/console/":                     true,
		"/console/patients?x=1":         true,
		"":                              false,
		"console":                       false,
		"//evil.example/":               false,
		"/\\evil.example/":              false,
		"https://evil.example/":         false,
		"/a\r\nSet-Cookie: x=1":         false,
		"/" + strings.Repeat("a", 2000): false,
	}
	for p, want := range tests {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestAccountID(t *testing.T) {
	a := AccountID("https://idp.example.org", "123")
	if !strings.HasPrefix(a, "sso.") || a != AccountID("https://idp.example.org", "123") {
		t.Errorf("AccountID not stable: %q", a)
	}
	for _, other := range []string{AccountID("https://other.example.org", "123"), AccountID("https://idp.example.org", "1234"), AccountID("https://idp.example.org1", "23")} {
		if other == a {
			t.Errorf("AccountID collides: %q", other)
		}
	}
}

func TestCookieRoundTrip(t *testing.T) {
	s := newCookieSigner([]byte(strings.Repeat("k", 32)))
	now := time.Unix(1_800_000_000, 0)
	st := loginState{State: "s", Nonce: "n", Verifier: "v", Expires: now.Add(time.Minute).Unix(), Next: "/console/"}
	v := s.seal(st)
	got, err := s.parse(v, now)
	if err != nil || got != st {
		t.Fatalf("parse(seal) = %+v, %v", got, err)
	}
	if _, err := s.parse(v, now.Add(time.Minute)); err == nil {
		t.Error("expired cookie accepted")
	}
	if _, err := newCookieSigner([]byte(strings.Repeat("x", 32))).parse(v, now); err == nil {
		t.Error("cookie accepted under another key")
	}
	st.Next = "//evil.example/"
	if _, err := s.parse(s.seal(st), now); err == nil {
		t.Error("cookie with a foreign landing accepted")
	}
}

func TestUsedStates(t *testing.T) {
	u := usedStates{max: 2}
	now := time.Unix(1_800_000_000, 0)
	step := func(state string, exp time.Time) string {
		fresh, err := u.use(state, exp, now)
		return fmt.Sprint(fresh, err != nil)
	}
	got := []string{
		step("a", now.Add(time.Minute)),
		step("a", now.Add(time.Minute)),
		step("b", now.Add(-time.Second)), // already expired: pruned when full
		step("c", now.Add(time.Minute)),
		step("d", now.Add(time.Minute)), // full of live states
	}
	want := []string{"true false", "false false", "true false", "true false", "false true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("use (-want +got):\n%s", diff)
	}
}

// FuzzParseCookie: the cookie parser never panics, and accepts only what
// the signer sealed (a value it accepts is its own canonical sealing).
func FuzzParseCookie(f *testing.F) {
	s := newCookieSigner([]byte(strings.Repeat("k", 32)))
	now := time.Unix(1_800_000_000, 0)
	f.Add(s.seal(loginState{State: "s", Nonce: "n", Verifier: "v", Expires: now.Add(time.Minute).Unix(), Next: "/"}))
	f.Add("e30.")
	f.Add(".")
	f.Fuzz(func(t *testing.T, v string) {
		st, err := s.parse(v, now)
		if err != nil {
			return
		}
		if s.seal(st) != v {
			// JSON may be spelled differently, but it must still carry a valid MAC.
			payload, _, _ := strings.Cut(v, ".")
			if !strings.HasSuffix(v, "."+b64(s.mac(payload))) {
				t.Fatalf("accepted an unsigned cookie %q", v)
			}
		}
	})
}

// FuzzRoleClaim: any JSON claim value maps only to known roles, sorted and
// distinct.
func FuzzRoleClaim(f *testing.F) {
	c := Config{RoleMap: map[string][]string{"a": {"physician", "nurse"}, "b": {"nurse"}, "c": {"bogus"}}}
	for _, s := range []string{`"a"`, `["a","b","c"]`, `[1,{"a":1},null]`, `{}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		roles := c.mapRoles(claimStrings(v))
		if !slices.IsSorted(roles) || len(slices.Compact(slices.Clone(roles))) != len(roles) {
			t.Fatalf("roles not sorted and distinct: %v", roles)
		}
		for _, r := range roles {
			if !slices.Contains(account.Roles, r) {
				t.Fatalf("unknown role %q granted", r)
			}
		}
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
