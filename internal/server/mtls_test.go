package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

// recorder is an audit double that keeps events, or fails when broken.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	broken bool
}

func (r *recorder) Record(_ context.Context, e *audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken {
		return errors.New("audit down")
	}
	r.events = append(r.events, *e)
	return nil
}

func (r *recorder) last() audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return audit.Event{}
	}
	return r.events[len(r.events)-1]
}

// mtlsEnv is a server with a device route (/device, mTLS required) and a
// public one (/public), a device CA, a foreign CA and the server cert.
type mtlsEnv struct {
	url             string
	deviceCA, other *testCert
	srvCert         *testCert
	caFile, crlFile string
	clients         *server.ClientCAs
	audit           *recorder
}

func newMTLSEnv(t *testing.T) *mtlsEnv {
	t.Helper()
	dir := t.TempDir()
	e := &mtlsEnv{
		deviceCA: makeCert(t, "device CA", nil, certOpts{ca: true}),
		other:    makeCert(t, "other CA", nil, certOpts{ca: true}),
		srvCert:  makeCert(t, "server", nil, certOpts{}),
		caFile:   filepath.Join(dir, "device-ca.pem"), crlFile: filepath.Join(dir, "device.crl"),
		audit: &recorder{},
	}
	replaceFile(t, e.caFile, e.deviceCA.certPEM())
	replaceFile(t, e.crlFile, crlPEM(t, e.deviceCA, time.Now().Add(24*time.Hour)))
	certFile, keyFile := writePair(t, dir, e.srvCert)
	certs, err := server.NewCertReloader(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.clients, err = server.NewClientCAs(server.ClientCAsConfig{CAFile: e.caFile, CRLFile: e.crlFile, Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/device", e.clients.RequireClientCert(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := policy.PrincipalFrom(r.Context())
		json.NewEncoder(w).Encode(p)
	})))
	mux.Handle("/public", okHandler())
	e.url = "https://" + serveTLS(t, server.NewTLSConfig(certs, e.clients), mux)
	return e
}

// client returns an HTTP client presenting dev (none if nil).
func (e *mtlsEnv) client(dev *testCert) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(e.srvCert.cert)
	cfg := &tls.Config{RootCAs: pool}
	if dev != nil {
		// Present the certificate even when the server's list of
		// acceptable CAs does not name its issuer, as an attacker would.
		cert := dev.tlsCert()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

func TestDeviceRouteRequiresValidClientCert(t *testing.T) {
	e := newMTLSEnv(t)
	good := makeCert(t, "infusion-pump-7", e.deviceCA, certOpts{client: true})
	revoked := makeCert(t, "stolen-monitor-2", e.deviceCA, certOpts{client: true})
	foreign := makeCert(t, "infusion-pump-7", e.other, certOpts{client: true})
	expired := makeCert(t, "old-scale-1", e.deviceCA, certOpts{client: true, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	serverOnly := makeCert(t, "not-a-client", e.deviceCA, certOpts{}) // server-auth EKU only
	replaceFile(t, e.crlFile, crlPEM(t, e.deviceCA, time.Now().Add(24*time.Hour), revoked))
	if err := e.clients.Reload(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name          string
		dev           *testCert
		handshakeFail bool // the TLS handshake itself refuses the certificate
		deviceStatus  int
	}{
		{"no certificate", nil, false, http.StatusForbidden},
		{"valid device certificate", good, false, http.StatusOK},
		{"revoked certificate", revoked, true, 0},
		{"certificate from another CA", foreign, true, 0},
		{"expired certificate", expired, true, 0},
		{"certificate not for client auth", serverOnly, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(tc.dev)
			resp, err := c.Get(e.url + "/device")
			if tc.handshakeFail {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET /device with %s = %d, want the handshake refused", tc.name, resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.deviceStatus {
				t.Fatalf("GET /device = %d %s, want %d", resp.StatusCode, body, tc.deviceStatus)
			}
			if tc.deviceStatus != http.StatusOK {
				if !strings.Contains(string(body), `"resourceType":"OperationOutcome"`) || !strings.Contains(string(body), `"forbidden"`) {
					t.Errorf("refusal body %s is not a forbidden OperationOutcome", body)
				}
				if ev := e.audit.last(); ev.Interaction != "login-failed" || ev.AuthMethod != "mtls" || ev.Outcome != audit.MinorFailure {
					t.Errorf("refusal not audited as a failed mTLS login: %+v", ev)
				}
			} else {
				var p policy.Principal
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatal(err)
				}
				got := policy.Principal{UserID: p.UserID, Roles: p.Roles, Method: p.Method}
				want := policy.Principal{UserID: "device:infusion-pump-7", Roles: []string{"device"}, Method: "mtls"}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("device principal (-want +got):\n%s", d)
				}
			}
			// Clients without a device certificate still reach the rest.
			if r2, err := c.Get(e.url + "/public"); err != nil || r2.StatusCode != http.StatusOK {
				t.Errorf("GET /public = %v %v, want 200", r2, err)
			} else {
				r2.Body.Close()
			}
		})
	}
}

// A certificate revoked while its connection is open stops working on that
// connection at the next request.
func TestRevocationAppliesToOpenConnections(t *testing.T) {
	e := newMTLSEnv(t)
	dev := makeCert(t, "ventilator-3", e.deviceCA, certOpts{client: true})
	c := e.client(dev)
	status := func() int {
		resp, err := c.Get(e.url + "/device")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("before revocation: %d", s)
	}
	replaceFile(t, e.crlFile, crlPEM(t, e.deviceCA, time.Now().Add(24*time.Hour), dev))
	if err := e.clients.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != http.StatusForbidden {
		t.Errorf("after revocation, same connection: %d, want 403", s)
	}
	if _, err := e.client(dev).Get(e.url + "/device"); err == nil {
		t.Error("a new connection with the revoked certificate was accepted")
	}

	// The audit log down: the refusal is a 503, not a silent 403.
	e.audit.mu.Lock()
	e.audit.broken = true
	e.audit.mu.Unlock()
	if s := status(); s != http.StatusServiceUnavailable {
		t.Errorf("refusal with the audit log down = %d, want 503", s)
	}
}

func TestClientCAsReloadFailuresKeepPrevious(t *testing.T) {
	e := newMTLSEnv(t)
	dev := makeCert(t, "pump-1", e.deviceCA, certOpts{client: true})
	for _, tc := range []struct {
		name    string
		file    string
		content []byte
	}{
		{"CRL signed by another CA", "crl", crlPEM(t, e.other, time.Now().Add(time.Hour), dev)},
		{"garbage CRL", "crl", []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")},
		{"empty CA bundle", "ca", nil},
		{"leaf certificate as CA bundle", "ca", dev.certPEM()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := map[string]string{"crl": e.crlFile, "ca": e.caFile}[tc.file]
			replaceFile(t, path, tc.content)
			if err := e.clients.Reload(); err == nil {
				t.Fatal("Reload accepted it")
			}
			if _, err := e.clients.Verify([]*x509.Certificate{dev.cert}); err != nil {
				t.Errorf("after a failed reload a valid device is refused: %v", err)
			}
			// restore
			replaceFile(t, e.caFile, e.deviceCA.certPEM())
			replaceFile(t, e.crlFile, crlPEM(t, e.deviceCA, time.Now().Add(24*time.Hour)))
		})
	}
}

func TestClientCAsVerify(t *testing.T) {
	e := newMTLSEnv(t)
	dev := makeCert(t, "pump-1", e.deviceCA, certOpts{client: true})
	// An out-of-date CRL: revocation status unknown, every device refused.
	replaceFile(t, e.crlFile, crlPEM(t, e.deviceCA, time.Now().Add(-time.Minute)))
	if err := e.clients.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.clients.Verify([]*x509.Certificate{dev.cert}); !errors.Is(err, server.ErrCRLOutOfDate) {
		t.Errorf("Verify with a stale CRL = %v, want ErrCRLOutOfDate", err)
	}
	if _, err := e.clients.Verify(nil); !errors.Is(err, server.ErrNoClientCert) {
		t.Errorf("Verify(nil) = %v, want ErrNoClientCert", err)
	}
	// The watcher reloads a fresh CRL without a signal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.clients.Watch(ctx, 20*time.Millisecond)
	replaceFile(t, e.crlFile, crlPEM(t, e.deviceCA, time.Now().Add(time.Hour)))
	waitFor(t, func() bool { _, err := e.clients.Verify([]*x509.Certificate{dev.cert}); return err == nil })
}

func TestDeviceFromCert(t *testing.T) {
	ca := makeCert(t, "CA", nil, certOpts{ca: true})
	for _, tc := range []struct {
		cn     string
		wantOK bool
	}{
		{"infusion-pump-7", true},
		{"scanner_2.ward-b@site1", true},
		{"", false},
		{"pump 7", false},
		{"device:admin", false},
		{"pümp", false},
		{strings.Repeat("a", 65), false},
	} {
		p, ok := server.DeviceFromCert(makeCert(t, tc.cn, ca, certOpts{client: true}).cert)
		if ok != tc.wantOK {
			t.Errorf("DeviceFromCert(CN %q) ok = %v, want %v", tc.cn, ok, tc.wantOK)
			continue
		}
		if ok && (p.UserID != "device:"+tc.cn || !cmp.Equal(p.Roles, []string{"device"}) || p.Method != "mtls") {
			t.Errorf("DeviceFromCert(CN %q) = %+v", tc.cn, p)
		}
	}
	if _, ok := server.DeviceFromCert(nil); ok {
		t.Error("DeviceFromCert(nil) ok")
	}
}

// Dropping a CA from the bundle refuses its devices at once, also on
// connections opened before (whose chains were verified and cached).
func TestRemovedCAAppliesToOpenConnections(t *testing.T) {
	e := newMTLSEnv(t)
	dev := makeCert(t, "pump-9", e.deviceCA, certOpts{client: true})
	c := e.client(dev)
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusForbidden} {
		if i == 2 {
			replaceFile(t, e.caFile, e.other.certPEM())
			replaceFile(t, e.crlFile, crlPEM(t, e.other, time.Now().Add(time.Hour)))
			if err := e.clients.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := c.Get(e.url + "/device")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}
