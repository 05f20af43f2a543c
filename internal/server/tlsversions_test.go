package server_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/server"
)

const secretMarker = "handler-data-7f3a"

// tlsTarget is a test server and the certificate to trust for it.
type tlsTarget struct {
	addr string
	root *testCert
}

// tlsConfigs are the server configurations phivault uses: plain, and with
// device client certificates (which swaps the Config per handshake and so
// must not lose any setting).
func tlsConfigs(t *testing.T) map[string]tlsTarget {
	dir := t.TempDir()
	srvCert := makeCert(t, "server", nil, certOpts{})
	certFile, keyFile := writePair(t, dir, srvCert)
	certs, err := server.NewCertReloader(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := makeCert(t, "device CA", nil, certOpts{ca: true})
	caFile, crlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem")
	replaceFile(t, caFile, ca.certPEM())
	replaceFile(t, crlFile, crlPEM(t, ca, time.Now().Add(time.Hour)))
	clients, err := server.NewClientCAs(server.ClientCAsConfig{CAFile: caFile, CRLFile: crlFile, Audit: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, secretMarker) })
	return map[string]tlsTarget{
		"TLS":               {serveTLS(t, server.NewTLSConfig(certs, nil), h), srvCert},
		"TLS with mTLS":     {serveTLS(t, server.NewTLSConfig(certs, clients), h), srvCert},
		"fixed certificate": {serveTLS(t, server.TLSConfig(*mustPair(t, certFile, keyFile)), h), srvCert},
	}
}

func mustPair(t *testing.T, certFile, keyFile string) *tls.Certificate {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestOnlyTLS13AEAD: TLS 1.0, 1.1 and 1.2 handshakes are refused, whatever
// suites the client offers (all of Go's, insecure ones included); what is
// negotiated is TLS 1.3 with one of its AEAD suites.
func TestOnlyTLS13AEAD(t *testing.T) {
	var allSuites []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		allSuites = append(allSuites, s.ID)
	}
	aead := map[uint16]bool{tls.TLS_AES_128_GCM_SHA256: true, tls.TLS_AES_256_GCM_SHA384: true, tls.TLS_CHACHA20_POLY1305_SHA256: true}
	for name, srv := range tlsConfigs(t) {
		pool := x509.NewCertPool()
		pool.AddCert(srv.root.cert)
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12} {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.addr, &tls.Config{
				RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: v, CipherSuites: allSuites,
			})
			if err == nil {
				st := conn.ConnectionState()
				conn.Close()
				t.Errorf("%s: a client limited to %s negotiated %s with %s", name, tls.VersionName(v), tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			} else if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("%s: %s refused for another reason than the version: %v", name, tls.VersionName(v), err)
			}
		}
		for i := 0; i < 3; i++ {
			conn, err := tls.Dial("tcp", srv.addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, CipherSuites: allSuites})
			if err != nil {
				t.Fatalf("%s: TLS 1.3 handshake: %v", name, err)
			}
			st := conn.ConnectionState()
			conn.Close()
			if st.Version != tls.VersionTLS13 || !aead[st.CipherSuite] {
				t.Errorf("%s: negotiated %s %s, want TLS 1.3 with an AEAD suite", name, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			}
		}
	}
}

// TestPlainHTTPGetsNoData: a plain-text request to the TLS port never
// reaches a handler.
func TestPlainHTTPGetsNoData(t *testing.T) {
	for name, srv := range tlsConfigs(t) {
		conn, err := net.DialTimeout("tcp", srv.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		got, _ := io.ReadAll(bufio.NewReader(conn))
		conn.Close()
		if strings.Contains(string(got), secretMarker) || strings.Contains(string(got), " 200 ") {
			t.Errorf("%s: plain HTTP to the TLS port got %q", name, got)
		}
	}
}
