package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/phivault/phivault/internal/server"
)

// requireOpenSSL returns the openssl program; without it the test skips,
// or fails under CI=true.
func requireOpenSSL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("openssl is missing (apt-get install openssl) and CI=true")
	}
	t.Skip("openssl is missing; apt-get install openssl to run the OCSP tests")
	return ""
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// issue makes a certificate for cn signed by parent (self-signed if nil),
// with serial and edit applied to the template.
func issue(t testing.TB, cn string, parent *testCert, serial int64, edit func(*x509.Certificate)) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature}
	if edit != nil {
		edit(tmpl)
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key}
}

func caTemplate(c *x509.Certificate) {
	c.IsCA, c.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature
}

// ocspResponder runs `openssl ocsp` as an OCSP responder for the
// certificates of ca, answering from an index of serials (good or
// revoked) and signing with signer, responses valid for 10 minutes. It
// returns the responder's URL and a function that stops it.
func ocspResponder(t testing.TB, openssl string, ca, signer *testCert, good, revoked []int64) (string, func()) {
	t.Helper()
	var g, r []*big.Int
	for _, s := range good {
		g = append(g, big.NewInt(s))
	}
	for _, s := range revoked {
		r = append(r, big.NewInt(s))
	}
	return ocspResponderKeys(t, openssl, ca.cert, signer.cert, signer.key, g, r)
}

// ocspResponderKeys is ocspResponder for any issuer, signer and key.
func ocspResponderKeys(t testing.TB, openssl string, ca, signer *x509.Certificate, key any, good, revoked []*big.Int) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	var idx strings.Builder
	exp := time.Now().Add(48 * time.Hour).UTC().Format("060102150405Z")
	for _, s := range good {
		fmt.Fprintf(&idx, "V\t%s\t\t%s\tunknown\t/CN=good\n", exp, opensslSerial(s))
	}
	for _, s := range revoked {
		fmt.Fprintf(&idx, "R\t%s\t%s\t%s\tunknown\t/CN=revoked\n", exp, time.Now().Add(-time.Hour).UTC().Format("060102150405Z"), opensslSerial(s))
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	files := map[string][]byte{"index.txt": []byte(idx.String()), "ca.pem": certPEM(ca),
		"signer.pem": certPEM(signer), "signer.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, openssl, "ocsp", "-index", "index.txt", "-port", "0", "-CA", "ca.pem",
		"-rsigner", "signer.pem", "-rkey", "signer.key", "-nmin", "10", "-ignore_err")
	cmd.Dir = dir
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); cmd.Wait() }) }
	t.Cleanup(stop)
	// openssl prints "ACCEPT [::]:PORT PID=..." once it listens.
	line, err := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(`:(\d+) `).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("openssl ocsp did not start: %q %v; stderr: %s", line, err, stderr.String())
	}
	return "http://127.0.0.1:" + m[1], stop
}

// opensslSerial is a serial as openssl's index holds it: upper-case hex,
// two digits per byte.
func opensslSerial(s *big.Int) string {
	h := fmt.Sprintf("%X", s)
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}

// ocspLeaf is a server certificate for 127.0.0.1 from ca naming url as
// its OCSP responder.
func ocspLeaf(t testing.TB, ca *testCert, serial int64, url string) *testCert {
	return issue(t, "127.0.0.1", ca, serial, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		c.OCSPServer = []string{url}
	})
}

// writeChain writes leaf and its issuer (the chain a CA hands out) and the
// key, and returns a reloader serving them.
func writeChain(t testing.TB, leaf, issuer *testCert) *server.CertReloader {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	replaceFile(t, certFile, append(leaf.certPEM(), issuer.certPEM()...))
	replaceFile(t, keyFile, leaf.keyPEM(t))
	certs, err := server.NewCertReloader(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// handshake connects over TLS 1.3 trusting ca and returns the stapled
// OCSP response (nil when none).
func handshake(t *testing.T, addr string, ca *testCert) []byte {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3", cs.Version)
	}
	return cs.OCSPResponse
}

// TestOCSPStapling runs a real OCSP responder (openssl ocsp) and checks
// what a client receives: a good certificate's response, verifiable
// against the CA, is stapled; a revoked one's, and responses signed by
// anyone but the CA or a delegated OCSP signer it issued, are not.
func TestOCSPStapling(t *testing.T) {
	openssl := requireOpenSSL(t)
	ca := issue(t, "OCSP test CA", nil, 1, caTemplate)
	foreign := issue(t, "foreign CA", nil, 2, caTemplate)
	delegate := issue(t, "OCSP signer", ca, 3, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	})
	notDelegate := issue(t, "not an OCSP signer", ca, 4, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	cases := []struct {
		name    string
		signer  *testCert
		revoked bool
		staple  bool
		wantErr error
		wantLog string
	}{
		{"good, signed by the issuer", ca, false, true, nil, "OCSP response stapled"},
		{"good, delegated OCSP signer", delegate, false, true, nil, "OCSP response stapled"},
		{"revoked", ca, true, false, server.ErrOCSPRevoked, "REVOKED"},
		{"signed by a foreign key", foreign, false, false, server.ErrOCSPInvalid, "OCSP refresh failed"},
		{"signer without OCSPSigning", notDelegate, false, false, server.ErrOCSPInvalid, "not for OCSP signing"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			serial := int64(100 + i)
			good, revoked := []int64{serial}, []int64(nil)
			if tc.revoked {
				good, revoked = nil, good
			}
			url, _ := ocspResponder(t, openssl, ca, tc.signer, good, revoked)
			leaf := ocspLeaf(t, ca, serial, url)
			var logs lockedBuffer
			st := server.NewOCSPStapler(writeChain(t, leaf, ca), slog.New(slog.NewJSONHandler(&logs, nil)))
			err := st.Prefetch(context.Background())
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Prefetch: %v, want %v", err, tc.wantErr)
			}
			addr := serveTLS(t, server.NewTLSConfig(st, nil), okHandler())
			der := handshake(t, addr, ca)
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
			if !tc.staple {
				if der != nil {
					t.Fatalf("a response was stapled (%d bytes)", len(der))
				}
				return
			}
			r, err := ocsp.ParseResponseForCert(der, leaf.cert, ca.cert)
			if err != nil {
				t.Fatalf("stapled response does not verify against the CA: %v (stapled %d bytes)", err, len(der))
			}
			if r.Status != ocsp.Good || r.SerialNumber.Int64() != serial || !time.Now().Before(r.NextUpdate) {
				t.Fatalf("stapled status %d serial %v next %v", r.Status, r.SerialNumber, r.NextUpdate)
			}
		})
	}
}

// TestOCSPHandshakeNeverWaits points the certificate at a responder that
// accepts connections and never answers: handshakes go through at once,
// without a staple.
func TestOCSPHandshakeNeverWaits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	ca := issue(t, "OCSP test CA", nil, 1, caTemplate)
	leaf := ocspLeaf(t, ca, 200, "http://"+ln.Addr().String())
	st := server.NewOCSPStapler(writeChain(t, leaf, ca), nil)
	addr := serveTLS(t, server.NewTLSConfig(st, nil), okHandler())
	for range 3 { // the first starts the fetch; the others find it in flight
		if der := handshake(t, addr, ca); der != nil {
			t.Fatalf("stapled %d bytes from a responder that never answered", len(der))
		}
	}
}

// TestOCSPRefreshAndExpiry moves the stapler's clock: the response is
// refreshed only after half its validity; with the responder gone, the
// held response is stapled until its nextUpdate and never after.
func TestOCSPRefreshAndExpiry(t *testing.T) {
	openssl := requireOpenSSL(t)
	ca := issue(t, "OCSP test CA", nil, 1, caTemplate)
	url, stopResponder := ocspResponder(t, openssl, ca, ca, []int64{300}, nil)
	leaf := ocspLeaf(t, ca, 300, url)
	var logs lockedBuffer
	st := server.NewOCSPStapler(writeChain(t, leaf, ca), slog.New(slog.NewJSONHandler(&logs, nil)))
	var mu sync.Mutex
	now := time.Now()
	server.SetOCSPClock(st, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	setNow := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	staple := func() *ocsp.Response {
		c, err := st.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if c.OCSPStaple == nil {
			return nil
		}
		r, err := ocsp.ParseResponseForCert(c.OCSPStaple, leaf.cert, ca.cert)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	fetches := func() int { return strings.Count(logs.String(), "OCSP response stapled") }

	if err := st.Prefetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	r1 := staple()
	if r1 == nil || r1.Status != ocsp.Good {
		t.Fatalf("no good staple after Prefetch: %+v", r1)
	}
	half := r1.NextUpdate.Sub(r1.ThisUpdate) / 2

	setNow(r1.ThisUpdate.Add(half - time.Minute))
	server.OCSPRefreshDue(st)
	if got := fetches(); got != 1 {
		t.Fatalf("refetched before half-way: %d fetches", got)
	}
	setNow(r1.ThisUpdate.Add(half + time.Minute))
	server.OCSPRefreshDue(st)
	waitFor(t, func() bool { return fetches() == 2 })

	stopResponder()
	r2 := staple()
	if r2 == nil {
		t.Fatal("no staple after the refresh")
	}
	setNow(r2.NextUpdate.Add(-time.Second))
	server.OCSPRefreshDue(st)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "OCSP refresh failed") })
	if staple() == nil {
		t.Fatal("a still-valid response was dropped because the responder is down")
	}
	setNow(r2.NextUpdate.Add(time.Second))
	if r := staple(); r != nil {
		t.Fatalf("stapled a response past its nextUpdate (%v)", r.NextUpdate)
	}
}
