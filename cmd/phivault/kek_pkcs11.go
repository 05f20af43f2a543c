//go:build pkcs11

package main

import "github.com/phivault/phivault/internal/keys/pkcs11"

// openPKCS11 opens the PKCS#11 provider of a data directory.
func openPKCS11(c pkcs11.Config) (rotatingKEK, error) {
	p, err := pkcs11.Open(c)
	if err != nil {
		return nil, pkcs11Failure(c, err)
	}
	return p, nil
}

// createPKCS11 makes (or finds) the KEK of a new data directory in the
// token; created reports whether it generated version 1.
func createPKCS11(c pkcs11.Config) (created bool, err error) {
	p, created, err := pkcs11.Create(c)
	if err != nil {
		return false, pkcs11Failure(c, err)
	}
	return created, p.Close()
}
