// Package pkcs11 is the PKCS#11 key-encryption-key provider: the KEK is an
// AES-256 key generated inside an HSM token, sensitive and not extractable,
// and data keys are wrapped and unwrapped by AES-GCM inside the token. The
// KEK never leaves the HSM; phivault holds only a logged-in session.
//
// Versions: every version is a secret-key object of the configured key
// label whose CKA_ID is the decimal version number ("1", "2", ...). The
// highest version wraps; older versions unwrap until they are retired
// (destroyed in the token). A wrapped data key names the provider, token,
// key label and version ("pkcs11:<token>:<key>:<version>", see KEKName), so
// stored data says what wrapped it and other providers can be added beside
// this one without touching stored data.
//
// The provider itself needs cgo and is built only with the build tag
// pkcs11 (go build -tags pkcs11). This file, which holds the configuration,
// the errors and the key names, builds everywhere, so that a binary
// without the tag can still name what it lacks.
package pkcs11

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/keys"
)

// Errors of the provider. Each comes wrapped with the PKCS#11 return value
// that caused it; match them with errors.Is.
var (
	// ErrNotBuiltIn: this binary was built without the pkcs11 build tag.
	ErrNotBuiltIn = errors.New("pkcs11: this phivault was built without PKCS#11 support (build it with -tags pkcs11)")
	// ErrModule: the PKCS#11 library cannot be loaded or initialised.
	ErrModule = errors.New("pkcs11: cannot load the PKCS#11 module")
	// ErrNoToken: no token with the configured label is present.
	ErrNoToken = errors.New("pkcs11: token not found (is the HSM connected and the token initialised?)")
	// ErrWrongPIN: the token refused the user PIN.
	ErrWrongPIN = errors.New("pkcs11: the token refused the PIN")
	// ErrPINLocked: the token locked the user PIN after too many wrong tries.
	ErrPINLocked = errors.New("pkcs11: the token's user PIN is locked")
	// ErrNoKey: the token holds no key of the configured label.
	ErrNoKey = errors.New("pkcs11: the token holds no key of that label")
	// ErrTokenGone: the token stopped answering (removed, reset, or the
	// session was closed under us).
	ErrTokenGone = errors.New("pkcs11: the token is gone (removed or reset)")
	// ErrExtractable: a key object of the label could leave the token,
	// so it is refused as a KEK.
	ErrExtractable = errors.New("pkcs11: a key of that label is extractable or not sensitive; refused")
)

// Config says which module, token and key the provider uses. It holds the
// PIN, which is a secret: it comes from the environment, is never stored
// and prints as **redacted**.
type Config struct {
	Module string      // path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
	Token  string      // token label
	Key    string      // key label (every version of the KEK carries it)
	PIN    keys.Secret // user PIN
}

// Validate reports every problem of c at once. Labels are at most 32 bytes
// (a PKCS#11 token label field) and may not contain ':' (the separator of
// key names).
func (c Config) Validate() error {
	var errs []error
	if c.Module == "" {
		errs = append(errs, errors.New("pkcs11: no module path"))
	}
	for _, l := range []struct{ what, v string }{{"token", c.Token}, {"key", c.Key}} {
		switch {
		case l.v == "":
			errs = append(errs, fmt.Errorf("pkcs11: no %s label", l.what))
		case len(l.v) > 32 || strings.ContainsAny(l.v, ":\x00"):
			errs = append(errs, fmt.Errorf("pkcs11: %s label %q: at most 32 bytes, no ':'", l.what, l.v))
		}
	}
	if len(c.PIN) == 0 {
		errs = append(errs, errors.New("pkcs11: no PIN"))
	}
	return errors.Join(errs...)
}

// RefreshEvery: a provider's Wrap re-reads the token's key versions when
// its list is older than this, so that a version another node sharing the
// token created (a rotation there) is this node's current version within
// that time; Unwrap re-reads at once when it meets a version it does not
// know, or one that is gone.
const RefreshEvery = 5 * time.Second

// KEKName is the Wrapped.KEK name of a version of the key key in token.
func KEKName(token, key string, version int) string {
	return "pkcs11:" + token + ":" + key + ":" + strconv.Itoa(version)
}

// ParseKEKName splits a name made by KEKName. ok is false for anything
// else, including names of other providers.
func ParseKEKName(name string) (token, key string, version int, ok bool) {
	rest, found := strings.CutPrefix(name, "pkcs11:")
	if !found {
		return "", "", 0, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", 0, false
	}
	v, err := strconv.Atoi(parts[2])
	if err != nil || v < 1 || strconv.Itoa(v) != parts[2] {
		return "", "", 0, false
	}
	return parts[0], parts[1], v, true
}
