package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/phivault/phivault/internal/authn/account"
)

// TOTP parameters (RFC 6238 defaults, which every authenticator app
// understands): SHA-1, 6 digits, 30 s steps, one step of clock skew.
const (
	totpPeriod = 30
	totpSkew   = 1
	// recoveryCount codes of recoveryLen base32 characters (50 bits each).
	recoveryCount = 10
	recoveryLen   = 10
)

var (
	errWrongCode = errors.New("web: wrong code")
	errEnrolled  = errors.New("web: TOTP is already set up")
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

type codeKind int

const (
	badCode codeKind = iota
	totpCode
	recoveryCode
)

// parseCode classifies what a user typed into the code field: six digits
// are a TOTP code; ten base32 characters (case, spaces and dashes
// ignored) are a recovery code, returned normalized (lower case).
func parseCode(s string) (codeKind, string) {
	if len(s) > 64 {
		return badCode, ""
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == ' ' || c == '-' || c == '\t':
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z':
			b.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			b.WriteRune(c + ('a' - 'A'))
		default:
			return badCode, ""
		}
	}
	n := b.String()
	if len(n) == 6 && strings.Trim(n, "0123456789") == "" {
		return totpCode, n
	}
	if len(n) == recoveryLen && strings.Trim(n, "abcdefghijklmnopqrstuvwxyz234567") == "" {
		return recoveryCode, n
	}
	return badCode, ""
}

// totpStep returns the time step whose code is code, within the allowed
// skew of now, if that step is later than last (a step is never accepted
// twice, so a code seen by someone else cannot be replayed).
func totpStep(secret []byte, code string, last int64, now time.Time) (int64, bool) {
	if len(secret) == 0 || len(code) != 6 {
		return 0, false
	}
	enc := b32.EncodeToString(secret)
	opts := totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	cur := now.Unix() / totpPeriod
	var found int64
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(enc, time.Unix(step*totpPeriod, 0), opts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found == 0 {
			found = step
		}
	}
	if found == 0 || found <= last {
		return 0, false
	}
	return found, true
}

// useCode checks a TOTP or recovery code against m and consumes it: the
// TOTP step is recorded, a recovery code removed. It returns the method
// ("totp" or "recovery") or errWrongCode, changing nothing.
func useCode(m *account.MFA, typed string, now time.Time) (string, error) {
	kind, code := parseCode(typed)
	switch kind {
	case totpCode:
		step, ok := totpStep(m.TOTPSecret.Reveal(), code, m.TOTPLastStep, now)
		if !ok {
			return "", errWrongCode
		}
		m.TOTPLastStep = step
		return "totp", nil
	case recoveryCode:
		sum := sha256.Sum256([]byte(code))
		at := -1
		for i, h := range m.Recovery {
			if subtle.ConstantTimeCompare(h, sum[:]) == 1 {
				at = i
			}
		}
		if at < 0 {
			return "", errWrongCode
		}
		m.Recovery = append(m.Recovery[:at:at], m.Recovery[at+1:]...)
		return "recovery", nil
	}
	return "", errWrongCode
}

// newRecoveryCodes returns fresh codes as shown to the user
// ("abcde-fghij") and their SHA-256 hashes as stored.
func newRecoveryCodes() (shown []string, hashes [][]byte) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for range recoveryCount {
		raw := make([]byte, recoveryLen)
		rand.Read(raw)
		for i := range raw {
			raw[i] = alphabet[raw[i]&31]
		}
		sum := sha256.Sum256(raw)
		hashes = append(hashes, sum[:])
		shown = append(shown, string(raw[:5])+"-"+string(raw[5:]))
	}
	return shown, hashes
}
