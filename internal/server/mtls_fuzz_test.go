package server

import (
	"crypto/x509"
	"testing"
)

// FuzzParseCABundle: any input is either refused or yields only CA
// certificates; it never panics.
func FuzzParseCABundle(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		cas, err := parseCABundle(data)
		if err != nil {
			return
		}
		if len(cas) == 0 {
			t.Fatal("no error and no CA")
		}
		for _, ca := range cas {
			if !ca.IsCA {
				t.Fatalf("accepted a non-CA certificate %q", ca.Subject.CommonName)
			}
		}
	})
}

// FuzzParseCRLs: without a CA to check signatures against, no input is
// accepted as a revocation list; none panics.
func FuzzParseCRLs(f *testing.F) {
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		if l, err := parseCRLs(data, []*x509.Certificate{}); err == nil {
			t.Fatalf("accepted %d unsigned revocation lists", len(l))
		}
	})
}
