package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// load reads the CA bundle and CRL files into a new clientTrust without
// touching the one in use.
func (c *ClientCAs) load() (*clientTrust, error) {
	data, err := os.ReadFile(c.cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("mTLS CA bundle: %w", err)
	}
	cas, err := parseCABundle(data)
	if err != nil {
		return nil, fmt.Errorf("mTLS CA bundle %s: %w", c.cfg.CAFile, err)
	}
	t := &clientTrust{pool: x509.NewCertPool(), revoked: map[string]bool{}, verified: map[[sha256.Size]byte]time.Time{}}
	for _, ca := range cas {
		t.pool.AddCert(ca)
	}
	if c.cfg.CRLFile == "" {
		return t, nil
	}
	if data, err = os.ReadFile(c.cfg.CRLFile); err != nil {
		return nil, fmt.Errorf("mTLS CRL: %w", err)
	}
	crls, err := parseCRLs(data, cas)
	if err != nil {
		return nil, fmt.Errorf("mTLS CRL %s: %w", c.cfg.CRLFile, err)
	}
	for _, l := range crls {
		for _, e := range l.RevokedCertificateEntries {
			t.revoked[revocationKey(l.RawIssuer, e.SerialNumber.Bytes())] = true
		}
		if !l.NextUpdate.IsZero() && (t.nextUpdate.IsZero() || l.NextUpdate.Before(t.nextUpdate)) {
			t.nextUpdate = l.NextUpdate
		}
	}
	return t, nil
}

// parseCABundle parses PEM CERTIFICATE blocks, each a CA certificate. Any
// other content is an error, so a wrong file is not half-used.
func parseCABundle(data []byte) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q (want CERTIFICATE)", b.Type)
		}
		ca, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		if !ca.BasicConstraintsValid || !ca.IsCA {
			return nil, fmt.Errorf("certificate %q is not a CA certificate", ca.Subject.CommonName)
		}
		cas = append(cas, ca)
	}
	if strings.TrimSpace(string(data)) != "" {
		return nil, errors.New("content that is not a PEM certificate")
	}
	if len(cas) == 0 {
		return nil, errors.New("no CA certificate found")
	}
	return cas, nil
}

// parseCRLs parses one DER list or PEM "X509 CRL" blocks, and checks that
// each is signed by one of cas.
func parseCRLs(data []byte, cas []*x509.Certificate) ([]*x509.RevocationList, error) {
	var ders [][]byte
	if rest := data; strings.Contains(string(data), "-----BEGIN") {
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type != "X509 CRL" {
				return nil, fmt.Errorf("unexpected PEM block %q (want X509 CRL)", b.Type)
			}
			ders = append(ders, b.Bytes)
		}
		if strings.TrimSpace(string(rest)) != "" {
			return nil, errors.New("content that is not a PEM CRL")
		}
	} else {
		ders = [][]byte{data}
	}
	if len(ders) == 0 {
		return nil, errors.New("no revocation list found")
	}
	var out []*x509.RevocationList
	for _, der := range ders {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, err
		}
		if err := checkCRLIssuer(l, cas); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func checkCRLIssuer(l *x509.RevocationList, cas []*x509.Certificate) error {
	for _, ca := range cas {
		if string(ca.RawSubject) == string(l.RawIssuer) && l.CheckSignatureFrom(ca) == nil {
			return nil
		}
	}
	return fmt.Errorf("revocation list from %q is not signed by a CA in the bundle", l.Issuer.CommonName)
}

func revocationKey(rawIssuer, serial []byte) string {
	return string(rawIssuer) + "\x00" + string(serial)
}
