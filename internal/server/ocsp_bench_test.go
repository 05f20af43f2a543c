package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/server"
)

// BenchmarkHandshakeOCSP compares full TLS 1.3 handshakes (no resumption)
// with the certificate straight from its files, through the OCSP stapler
// for a certificate without a responder, and with a response stapled
// (from openssl ocsp), interleaved; it reports the ratios to "files".
func BenchmarkHandshakeOCSP(b *testing.B) {
	openssl := requireOpenSSL(b)
	ca := issue(b, "OCSP test CA", nil, 1, caTemplate)
	url, _ := ocspResponder(b, openssl, ca, ca, []int64{500}, nil)
	stapledCerts := writeChain(b, ocspLeaf(b, ca, 500, url), ca)
	plainCerts := writeChain(b, ocspLeaf(b, ca, 501, ""), ca)
	stapler := server.NewOCSPStapler(stapledCerts, nil)
	if err := stapler.Prefetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	configs := []struct {
		name  string
		certs server.CertSource
		addr  string
		total time.Duration
	}{
		{name: "files", certs: plainCerts},
		{name: "stapler-no-responder", certs: server.NewOCSPStapler(plainCerts, nil)},
		{name: "stapled", certs: stapler},
	}
	for i := range configs {
		configs[i].addr = serveTLS(b, server.NewTLSConfig(configs[i].certs, nil), okHandler())
	}
	cfg := &tls.Config{RootCAs: pool}
	// Interleaved, so that the machine's load hits every configuration alike.
	n := 0
	for b.Loop() {
		for i := range configs {
			start := time.Now()
			c, err := tls.Dial("tcp", configs[i].addr, cfg)
			if err != nil {
				b.Fatal(err)
			}
			configs[i].total += time.Since(start)
			if (i == 2) != (len(c.ConnectionState().OCSPResponse) > 0) {
				b.Fatalf("%s: stapled %d bytes", configs[i].name, len(c.ConnectionState().OCSPResponse))
			}
			c.Close()
		}
		n++
	}
	base := float64(configs[0].total) / float64(n)
	b.ReportMetric(base/1e3, "files-µs/handshake")
	b.ReportMetric(float64(configs[1].total)/float64(n)/base, "no-responder/files")
	b.ReportMetric(float64(configs[2].total)/float64(n)/base, "stapled/files")
}

// BenchmarkOCSPGetCertificate is the stapler's cost per handshake against
// the file source alone.
func BenchmarkOCSPGetCertificate(b *testing.B) {
	openssl := requireOpenSSL(b)
	ca := issue(b, "OCSP test CA", nil, 1, caTemplate)
	url, _ := ocspResponder(b, openssl, ca, ca, []int64{510}, nil)
	certs := writeChain(b, ocspLeaf(b, ca, 510, url), ca)
	stapler := server.NewOCSPStapler(certs, nil)
	if err := stapler.Prefetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{}
	for _, bc := range []struct {
		name  string
		certs server.CertSource
	}{{"files", certs}, {"stapled", stapler}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.certs.GetCertificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
