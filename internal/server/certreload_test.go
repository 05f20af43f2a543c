package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/server"
)

// client is an HTTP/2 client trusting roots, with keep-alive.
func h2Client(roots ...*testCert) *http.Client {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r.cert)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
	}}
}

// get fetches url and reports the server certificate's serial, whether the
// connection was reused, and the protocol.
func get(t *testing.T, c *http.Client, url string) (serial string, reused bool, proto int) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("GET %s = %d %q", url, resp.StatusCode, b)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.String(), reused, resp.ProtoMajor
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

func TestCertReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	a, b := makeCert(t, "server A", nil, certOpts{}), makeCert(t, "server B", nil, certOpts{})
	certFile, keyFile := writePair(t, dir, a)
	var logBuf lockedBuffer
	certs, err := server.NewCertReloader(certFile, keyFile, slog.New(slog.NewJSONHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go certs.Watch(ctx, 20*time.Millisecond)
	url := "https://" + serveTLS(t, server.NewTLSConfig(certs, nil), okHandler())

	old := h2Client(a, b)
	if serial, _, proto := get(t, old, url); serial != a.cert.SerialNumber.String() || proto != 2 {
		t.Fatalf("first connection: serial %s proto %d, want A over HTTP/2", serial, proto)
	}

	// Renew: the watcher picks up the new files without a signal.
	writePair(t, dir, b)
	waitFor(t, func() bool { return certs.Leaf().SerialNumber.Cmp(b.cert.SerialNumber) == 0 })

	if serial, reused, _ := get(t, old, url); !reused || serial != a.cert.SerialNumber.String() {
		t.Errorf("open connection after reload: reused=%v serial %s; want the same connection, still A", reused, serial)
	}
	if serial, reused, _ := get(t, h2Client(a, b), url); reused || serial != b.cert.SerialNumber.String() {
		t.Errorf("new connection after reload: reused=%v serial %s; want a new connection with B", reused, serial)
	}

	// Broken pairs: each is refused, B stays in service. No two
	// neighbouring files form a valid pair, since the watcher may look
	// between the two renames.
	c, d, e := makeCert(t, "server C", nil, certOpts{}), makeCert(t, "server D", nil, certOpts{}), makeCert(t, "server E", nil, certOpts{})
	expired := makeCert(t, "expired", nil, certOpts{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"key of another certificate", c.certPEM(), b.keyPEM(t), "does not match"},
		{"garbage certificate", []byte("not a certificate"), d.keyPEM(t), "failed to find any PEM data"},
		{"empty key", e.certPEM(), nil, "failed to find any PEM data"},
		{"expired certificate", expired.certPEM(), expired.keyPEM(t), "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replaceFile(t, certFile, tc.cert)
			replaceFile(t, keyFile, tc.key)
			err := certs.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Reload() = %v, want an error mentioning %q", err, tc.want)
			}
			if serial, _, _ := get(t, h2Client(a, b), url); serial != b.cert.SerialNumber.String() {
				t.Errorf("after a broken reload a new connection got serial %s, want B (%s)", serial, b.cert.SerialNumber)
			}
		})
	}
	if _, err := os.Stat(certFile); err != nil {
		t.Fatal(err)
	}
	if logs := logBuf.String(); strings.Contains(logs, "PRIVATE KEY") || !strings.Contains(logs, "still serving the previous certificate") {
		t.Errorf("reload log must report failures and hold no key material:\n%s", logs)
	}
	// Removing the files is a failed reload too: B stays.
	os.Remove(certFile)
	if err := certs.Reload(); err == nil {
		t.Error("Reload with the certificate file gone succeeded")
	}
	if serial, _, _ := get(t, h2Client(a, b), url); serial != b.cert.SerialNumber.String() {
		t.Errorf("after the files vanished a new connection got serial %s, want B", serial)
	}
}

func TestNewCertReloaderRefusesBadPair(t *testing.T) {
	dir := t.TempDir()
	a, b := makeCert(t, "A", nil, certOpts{}), makeCert(t, "B", nil, certOpts{})
	certFile, keyFile := writePair(t, dir, a)
	replaceFile(t, keyFile, b.keyPEM(t))
	if _, err := server.NewCertReloader(certFile, keyFile, nil); err == nil {
		t.Error("NewCertReloader accepted a key that does not match the certificate")
	}
	if _, err := server.NewCertReloader(dir+"/missing.pem", keyFile, nil); err == nil {
		t.Error("NewCertReloader accepted a missing certificate file")
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
