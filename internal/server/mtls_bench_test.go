package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/server"
)

// BenchmarkHandshake compares full TLS handshakes (no resumption) without
// client certificates, with the mTLS configuration but no client
// certificate (browsers), and with a device certificate. Report the ratios.
func BenchmarkHandshake(b *testing.B) {
	dir := b.TempDir()
	srvCert := makeCert(b, "server", nil, certOpts{})
	certFile, keyFile := writePair(b, dir, srvCert)
	certs, err := server.NewCertReloader(certFile, keyFile, nil)
	if err != nil {
		b.Fatal(err)
	}
	ca := makeCert(b, "device CA", nil, certOpts{ca: true})
	caFile, crlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem")
	replaceFile(b, caFile, ca.certPEM())
	replaceFile(b, crlFile, crlPEM(b, ca, time.Now().Add(time.Hour), makeCert(b, "revoked", ca, certOpts{client: true})))
	clients, err := server.NewClientCAs(server.ClientCAsConfig{CAFile: caFile, CRLFile: crlFile, Audit: &recorder{}})
	if err != nil {
		b.Fatal(err)
	}
	dev := makeCert(b, "pump-1", ca, certOpts{client: true}).tlsCert()
	pool := x509.NewCertPool()
	pool.AddCert(srvCert.cert)
	for _, bc := range []struct {
		name    string
		clients *server.ClientCAs
		cert    []tls.Certificate
	}{
		{"tls", nil, nil},
		{"mtls-config-no-cert", clients, nil},
		{"mtls-device-cert", clients, []tls.Certificate{dev}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr := serveTLS(b, server.NewTLSConfig(certs, bc.clients), okHandler())
			cfg := &tls.Config{RootCAs: pool, Certificates: bc.cert, ClientSessionCache: nil}
			for b.Loop() {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Handshake(); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkRequireClientCertVerify is the per-request cost of re-checking a
// device certificate (chain, expiry, CRL).
func BenchmarkRequireClientCertVerify(b *testing.B) {
	dir := b.TempDir()
	ca := makeCert(b, "device CA", nil, certOpts{ca: true})
	caFile, crlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem")
	replaceFile(b, caFile, ca.certPEM())
	replaceFile(b, crlFile, crlPEM(b, ca, time.Now().Add(time.Hour)))
	clients, err := server.NewClientCAs(server.ClientCAsConfig{CAFile: caFile, CRLFile: crlFile, Audit: &recorder{}})
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{makeCert(b, "pump-1", ca, certOpts{client: true}).cert}
	for b.Loop() {
		if _, err := clients.Verify(chain); err != nil {
			b.Fatal(err)
		}
	}
}
