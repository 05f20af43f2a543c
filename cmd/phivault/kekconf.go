package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/keys/pkcs11"
)

// kekConfigName records, in a data directory whose KEK is held by a
// provider other than the key file (today: a PKCS#11 token), which one
// and where: module, token and key label, never the PIN. Absent means the
// key file kek.json.
const kekConfigName = "kek-provider.json"

// pkcs11PINEnv names the environment variable that gives the token's user
// PIN. The PIN is never logged or stored.
const pkcs11PINEnv = "PHIVAULT_PKCS11_PIN"

// kekConfig is the content of DIR/kek-provider.json.
type kekConfig struct {
	Provider string `json:"provider"` // "pkcs11"
	Module   string `json:"module"`
	Token    string `json:"token"`
	Key      string `json:"key"`
}

// rotatingKEK is what 'keys rotate|status|retire' needs of a provider: the
// key file (keys.File) and the PKCS#11 provider both are one.
type rotatingKEK interface {
	barrier.KEK
	barrier.Versioned
	Rotate() (int, error)
	Retire(version int) error
	Versions() []int
	KEKName(version int) string
}

var _ rotatingKEK = (*keys.File)(nil)

// isDataDir reports whether dir holds a KEK: a key file or a provider
// record.
func isDataDir(dir string) bool {
	for _, name := range []string{keyFileName, kekConfigName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// parseKEKConfig checks the content of a provider record.
func parseKEKConfig(b []byte) (kekConfig, error) {
	var c kekConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return c, err
	}
	if c.Provider != "pkcs11" {
		return c, errors.New("unknown provider")
	}
	if err := c.pkcs11("-").Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// readKEKConfig reads DIR/kek-provider.json; ok is false when there is none
// (the directory uses a key file).
func readKEKConfig(dir string) (c kekConfig, ok bool, err error) {
	path := filepath.Join(dir, kekConfigName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fail(exitKeys, "cannot read "+path+": "+err.Error(), "check its permissions")
	}
	if c, err = parseKEKConfig(b); err != nil {
		return c, false, fail(exitKeys, path+" is damaged: "+err.Error(),
			`it holds {"provider": "pkcs11", "module": "/path/lib.so", "token": "LABEL", "key": "LABEL"}`)
	}
	return c, true, nil
}

// writeKEKConfig records the provider of a new data directory (mode 0600,
// never overwriting).
func writeKEKConfig(dir string, c kekConfig) error {
	b, _ := json.MarshalIndent(c, "", "  ")
	f, err := os.OpenFile(filepath.Join(dir, kekConfigName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pkcs11 returns the provider configuration with pin.
func (c kekConfig) pkcs11(pin string) pkcs11.Config {
	return pkcs11.Config{Module: c.Module, Token: c.Token, Key: c.Key, PIN: keys.Secret(pin)}
}

// pkcs11PIN returns the PIN from PHIVAULT_PKCS11_PIN, or a one-line error.
func pkcs11PIN() (string, error) {
	pin := os.Getenv(pkcs11PINEnv)
	if pin == "" {
		return "", fail(exitKeys, "the KEK is in a PKCS#11 token and "+pkcs11PINEnv+" is not set", "set "+pkcs11PINEnv+" to the token's user PIN")
	}
	return pin, nil
}

// pkcs11Failure turns a provider error into a one-line message and a hint.
func pkcs11Failure(c pkcs11.Config, err error) error {
	hint := ""
	switch {
	case errors.Is(err, pkcs11.ErrNotBuiltIn):
		return fail(exitKeys, "this phivault was built without PKCS#11 support", "build it with 'go build -tags pkcs11 ./cmd/phivault' (needs cgo)")
	case errors.Is(err, pkcs11.ErrWrongPIN):
		hint = "check " + pkcs11PINEnv + " (the token's user PIN); repeated wrong PINs lock the token"
	case errors.Is(err, pkcs11.ErrPINLocked):
		hint = "the token's security officer must unlock the user PIN"
	case errors.Is(err, pkcs11.ErrNoToken), errors.Is(err, pkcs11.ErrTokenGone):
		hint = "connect the HSM (or restore the token) holding token " + c.Token + "; nothing can be read without it"
	case errors.Is(err, pkcs11.ErrModule):
		hint = "check the module path " + c.Module + " and the HSM client's configuration"
	case errors.Is(err, pkcs11.ErrNoKey):
		hint = "the KEK " + c.Key + " is not in token " + c.Token + ": restore the token from its backup"
	case errors.Is(err, pkcs11.ErrExtractable):
		hint = "a KEK must be sensitive and not extractable; re-import it with CKA_SENSITIVE true and CKA_EXTRACTABLE false"
	}
	return fail(exitKeys, "the PKCS#11 KEK cannot be used: "+err.Error(), hint)
}
