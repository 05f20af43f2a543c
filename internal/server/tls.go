package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSConfig returns phivault's TLS settings for a fixed certificate: TLS
// 1.3 only (its suites are all AEAD with forward secrecy), HTTP/2 and
// HTTP/1.1. Servers use NewTLSConfig, which reloads the certificate.
func TLSConfig(cert tls.Certificate) *tls.Config {
	c := baseTLSConfig()
	c.Certificates = []tls.Certificate{cert}
	return c
}

// NewTLSConfig returns phivault's TLS settings with the certificate from
// certs (a *CertReloader, an *ACME, or either behind an *OCSPStapler), so
// that a renewed certificate is served from the next handshake on; ALPN
// protocols the source names (ACME's acme-tls/1) are offered too. If
// clients is not nil, clients may present a certificate: one that is
// presented must chain to clients' CA bundle and not be revoked, or the
// handshake fails; one that is not presented is no error at the TLS layer
// (browsers and the console have none), so device routes must be wrapped
// in clients.RequireClientCert.
func NewTLSConfig(certs CertSource, clients *ClientCAs) *tls.Config {
	c := baseTLSConfig()
	c.GetCertificate = certs.GetCertificate
	if p, ok := certs.(interface{ NextProtos() []string }); ok {
		c.NextProtos = append(c.NextProtos, p.NextProtos()...)
	}
	if clients != nil {
		clients.configure(c)
	}
	return c
}

// baseTLSConfig is TLS 1.3 only: TLS 1.0 and 1.1 are broken or deprecated
// (RFC 8996), and leaving out 1.2 leaves out every non-AEAD and every
// non-forward-secret suite, since 1.3 has none.
func baseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// DevCertificate loads the self-signed development certificate from dir,
// creating it on first use (ECDSA P-256, valid for localhost, 127.0.0.1 and
// ::1, one year). created reports whether a new one was made.
func DevCertificate(dir string) (cert tls.Certificate, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		if leaf, perr := x509.ParseCertificate(cert.Certificate[0]); perr == nil && time.Now().Before(leaf.NotAfter.Add(-24*time.Hour)) {
			return cert, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return cert, false, fmt.Errorf("development certificate in %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, false, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "phivault development certificate", Organization: []string{"phivault (self-signed)"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return cert, false, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return cert, false, err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return cert, false, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return cert, false, err
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	return cert, true, err
}

// writeFile writes data to path atomically (temp file, fsync, rename).
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
