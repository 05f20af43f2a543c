//go:build !pkcs11

package main

import "github.com/phivault/phivault/internal/keys/pkcs11"

// openPKCS11 is the answer of a binary built without the pkcs11 tag.
func openPKCS11(c pkcs11.Config) (rotatingKEK, error) {
	return nil, pkcs11Failure(c, pkcs11.ErrNotBuiltIn)
}

// createPKCS11 is the answer of a binary built without the pkcs11 tag.
func createPKCS11(c pkcs11.Config) (bool, error) {
	return false, pkcs11Failure(c, pkcs11.ErrNotBuiltIn)
}
