package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/phivault/phivault/internal/server"
)

// testDNS answers A queries for names with 127.0.0.1 (no AAAA, NXDOMAIN
// for anything else) over TCP, as Pebble's validation authority asks, and
// returns its address.
func testDNS(t *testing.T, names ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range names {
		known[dns.Fqdn(n)] = true
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if len(q.Question) == 1 && known[strings.ToLower(q.Question[0].Name)] {
			if q.Question[0].Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
					Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("127.0.0.1")})
			}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// pebbleCA is Let's Encrypt's Pebble ACME server, run in-process: its CA,
// its validation authority (which really connects to the TLS-ALPN-01
// port, resolving names through dnsAddr) and its web front end over HTTPS.
type pebbleCA struct {
	directory string // ACME directory URL
	rootsFile string // PEM file trusting the directory's HTTPS certificate
	ca        *ca.CAImpl
	srv       *httptest.Server
	log       *lockedBuffer
}

func startPebble(t *testing.T, tlsPort int, dnsAddr, ocspURL string) *pebbleCA {
	return startPebbleVA(t, 0, tlsPort, dnsAddr, ocspURL)
}

// startPebbleVA is startPebble with HTTP-01 validation on httpPort too.
func startPebbleVA(t *testing.T, httpPort, tlsPort int, dnsAddr, ocspURL string) *pebbleCA {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	p := &pebbleCA{log: &lockedBuffer{}}
	logger := log.New(p.log, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	p.ca = ca.New(logger, store, ocspURL, "rsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	v := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	w := wfe.New(logger, store, v, p.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p.srv = httptest.NewUnstartedServer(w.Handler())
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.directory = p.srv.URL + wfe.DirectoryPath
	p.rootsFile = filepath.Join(t.TempDir(), "acme-roots.pem")
	replaceFile(t, p.rootsFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.log.String())
		}
	})
	return p
}

// root is the pool a client of the issued certificates trusts.
func (p *pebbleCA) root() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.GetRootCert(0).Cert)
	return pool
}

// listenTLS serves h with cfg on ln until the test ends.
func listenTLS(t *testing.T, ln net.Listener, cfg *tls.Config, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
}

func dialTLS(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// TestACMEFromPebble: phivault obtains a certificate from a real ACME
// server (Pebble) through TLS-ALPN-01 on its own listener; a client that
// trusts Pebble's root connects with TLS 1.3 and sees it, with a good OCSP
// response from a real responder (openssl ocsp, signing with Pebble's
// issuing key) stapled; device mTLS keeps working; a host name outside the
// policy, or none, gets no certificate; after a restart with the CA down
// the cached certificate is served.
func TestACMEFromPebble(t *testing.T) {
	openssl := requireOpenSSL(t)
	const host, other = "phivault.test", "other.test"
	dnsAddr := testDNS(t, host, other) // other resolves too: only the policy keeps it out
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port

	// The certificates name the OCSP URL before the responder, which needs
	// Pebble's issuer, exists: a proxy in front of it.
	var ocspTarget atomic.Pointer[url.URL]
	proxy := &httputil.ReverseProxy{ErrorLog: log.New(io.Discard, "", 0), Rewrite: func(r *httputil.ProxyRequest) {
		if u := ocspTarget.Load(); u != nil {
			r.SetURL(u)
		}
	}}
	ocspProxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ocspTarget.Load() == nil {
			http.Error(w, "responder not started yet", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ocspProxy.Close)
	peb := startPebble(t, port, dnsAddr, ocspProxy.URL)

	cacheDir := filepath.Join(t.TempDir(), "tls", "acme")
	roots, err := server.LoadCertPool(peb.rootsFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := server.ACMEConfig{Hosts: []string{host}, Email: "ops@phivault.test", DirectoryURL: peb.directory,
		CARoots: roots, CacheDir: cacheDir, Log: logger}
	acm, err := server.NewACME(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := server.NewOCSPStapler(acm, logger)
	env := newMTLSEnv(t) // its device CA, reused for the ACME listener
	mux := http.NewServeMux()
	mux.Handle("/device", env.clients.RequireClientCert(okHandler()))
	mux.Handle("/", okHandler())
	tlsCfg := server.NewTLSConfig(st, env.clients)
	listenTLS(t, ln, tlsCfg, mux)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := acm.Prefetch(ctx); err != nil {
		t.Fatalf("Prefetch: %v\nlog: %s", err, logs.String())
	}

	client := &tls.Config{ServerName: host, RootCAs: peb.root(), MinVersion: tls.VersionTLS13}
	cs, err := dialTLS(addr, client)
	if err != nil {
		t.Fatalf("TLS 1.3 client trusting Pebble: %v", err)
	}
	leaf := cs.PeerCertificates[0]
	if cs.Version != tls.VersionTLS13 || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Fatalf("version %x, certificate for %v from %q", cs.Version, leaf.DNSNames, leaf.Issuer.CommonName)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("certificate key is %T, want ECDSA (every TLS 1.3 client takes one)", leaf.PublicKey)
	}
	if _, err := dialTLS(addr, &tls.Config{ServerName: host, RootCAs: peb.root(), MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 client connected to the ACME listener")
	}

	// OCSP: a real responder for Pebble's issuer, then the staple.
	issuer := cs.PeerCertificates[1]
	respURL, _ := ocspResponderKeys(t, openssl, issuer, issuer, peb.ca.GetIntermediateKey(0), []*big.Int{leaf.SerialNumber}, nil)
	u, _ := url.Parse(respURL)
	ocspTarget.Store(u)
	if err := st.Prefetch(ctx, host); err != nil {
		t.Fatalf("OCSP prefetch: %v", err)
	}
	cs, err = dialTLS(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if out := opensslVerifyStaple(t, openssl, cs.OCSPResponse, leaf, issuer, peb.ca.GetRootCert(0).Cert); !strings.Contains(out, "Response verify OK") || !strings.Contains(out, "leaf.pem: good") {
		t.Fatalf("openssl does not verify the stapled response as good:\n%s", out)
	}

	// Device mTLS on the ACME listener.
	dev := makeCert(t, "pump-1", env.deviceCA, certOpts{client: true})
	hc := func(withCert bool) int {
		c := client.Clone()
		if withCert {
			cert := dev.tlsCert()
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: c,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}).Get("https://" + host + "/device")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := hc(true); got != http.StatusOK {
		t.Errorf("device with a certificate: %d", got)
	}
	if got := hc(false); got != http.StatusForbidden {
		t.Errorf("device without a certificate: %d", got)
	}

	// Outside the policy: no certificate, no order.
	if _, err := dialTLS(addr, &tls.Config{ServerName: other, InsecureSkipVerify: true}); err == nil {
		t.Errorf("a host outside the policy got a certificate")
	}
	if _, err := dialTLS(addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Errorf("a client without a server name got a certificate")
	}
	if strings.Contains(peb.log.String(), other) {
		t.Errorf("an order was placed for %s", other)
	}

	// The cache: owner-only, the certificate is there, nothing for other.
	checkOwnerOnly(t, cacheDir)
	if _, err := os.Stat(filepath.Join(cacheDir, host)); err != nil {
		t.Errorf("certificate not cached: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cacheDir, other)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something cached for %s: %v", other, err)
	}

	// Restart with the CA gone: the cached certificate is served.
	peb.srv.Close()
	acm2, err := server.NewACME(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := acm2.Prefetch(ctx); err != nil {
		t.Fatalf("restart with the CA down: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listenTLS(t, ln2, server.NewTLSConfig(acm2, nil), okHandler())
	cs, err = dialTLS(ln2.Addr().String(), client)
	if err != nil || !cs.PeerCertificates[0].Equal(leaf) {
		t.Fatalf("after restart: %v", err)
	}
}

// opensslVerifyStaple has openssl, as a client would, verify a stapled
// OCSP response for leaf up to root, and returns what it says.
func opensslVerifyStaple(t *testing.T, openssl string, der []byte, leaf, issuer, root *x509.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	certPEM := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	for name, data := range map[string][]byte{"staple.der": der, "leaf.pem": certPEM(leaf), "issuer.pem": certPEM(issuer), "root.pem": certPEM(root)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(openssl, "ocsp", "-respin", "staple.der", "-issuer", "issuer.pem", "-cert", "leaf.pem",
		"-CAfile", "root.pem", "-verify_other", "issuer.pem")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// checkOwnerOnly fails if dir or anything in it can be read by group or
// others: the cache holds private keys.
func checkOwnerOnly(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; the ACME cache holds private keys", p, fi.Mode().Perm())
		}
		return nil
	})
}

// acmeWithoutALPN hides ACME's acme-tls/1 protocol, so the CA cannot
// validate over TLS-ALPN-01 and must use HTTP-01.
type acmeWithoutALPN struct{ a *server.ACME }

func (w acmeWithoutALPN) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return w.a.GetCertificate(h)
}

// TestACMEHTTP01 obtains the certificate through HTTP-01 on the plain-HTTP
// listener (--acme-http) and checks that listener's other answers: a
// redirect to HTTPS for a configured host, 400 for any other host or
// method.
func TestACMEHTTP01(t *testing.T) {
	const host = "phivault.test"
	dnsAddr := testDNS(t, host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peb := startPebbleVA(t, httpLn.Addr().(*net.TCPAddr).Port, ln.Addr().(*net.TCPAddr).Port, dnsAddr, "")
	roots, err := server.LoadCertPool(peb.rootsFile)
	if err != nil {
		t.Fatal(err)
	}
	acm, err := server.NewACME(server.ACMEConfig{Hosts: []string{host}, Email: "ops@phivault.test", DirectoryURL: peb.directory,
		CARoots: roots, CacheDir: filepath.Join(t.TempDir(), "acme")})
	if err != nil {
		t.Fatal(err)
	}
	httpSrv := &http.Server{Handler: acm.HTTPHandler(8443), ReadHeaderTimeout: 5 * time.Second}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	listenTLS(t, ln, server.NewTLSConfig(acmeWithoutALPN{acm}, nil), okHandler())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := acm.Prefetch(ctx); err != nil {
		t.Fatalf("Prefetch over HTTP-01: %v", err)
	}
	cs, err := dialTLS(ln.Addr().String(), &tls.Config{ServerName: host, RootCAs: peb.root(), MinVersion: tls.VersionTLS13})
	if err != nil || cs.PeerCertificates[0].DNSNames[0] != host {
		t.Fatalf("client trusting Pebble: %v", err)
	}
	if !strings.Contains(peb.log.String(), "Attempting to validate w/ HTTP") {
		t.Errorf("Pebble log does not show an HTTP-01 validation")
	}

	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, host string
		status       int
		location     string
	}{
		{"GET", host, http.StatusPermanentRedirect, "https://" + host + ":8443/fhir/metadata?x=1"},
		{"GET", "evil.example", http.StatusBadRequest, ""},
		{"POST", host, http.StatusBadRequest, ""},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+httpLn.Addr().String()+"/fhir/metadata?x=1", nil)
		req.Host = tc.host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s for %s: %d %q, want %d %q", tc.method, tc.host, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
		}
	}
}

// TestACMEConfigValidate: bad settings are refused at start, all at once,
// each with a message naming the problem.
func TestACMEConfigValidate(t *testing.T) {
	good := server.ACMEConfig{Hosts: []string{"ehr.example.org"}, Email: "ops@example.org", CacheDir: t.TempDir()}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*server.ACMEConfig)
		want []string
	}{
		{"no hosts", func(c *server.ACMEConfig) { c.Hosts = nil }, []string{"at least one host"}},
		{"IP", func(c *server.ACMEConfig) { c.Hosts = []string{"192.0.2.1"} }, []string{"IP address"}},
		{"single label", func(c *server.ACMEConfig) { c.Hosts = []string{"localhost"} }, []string{"fully qualified"}},
		{"wildcard", func(c *server.ACMEConfig) { c.Hosts = []string{"*.example.org"} }, []string{"wildcard"}},
		{"port", func(c *server.ACMEConfig) { c.Hosts = []string{"ehr.example.org:443"} }, []string{"lower-case letters"}},
		{"upper case", func(c *server.ACMEConfig) { c.Hosts = []string{"EHR.example.org"} }, []string{"lower-case letters"}},
		{"empty label", func(c *server.ACMEConfig) { c.Hosts = []string{"ehr..example.org"} }, []string{"empty"}},
		{"bad email", func(c *server.ACMEConfig) { c.Email = "ops" }, []string{"e-mail"}},
		{"named email", func(c *server.ACMEConfig) { c.Email = "Ops <ops@example.org>" }, []string{"e-mail"}},
		{"http directory", func(c *server.ACMEConfig) { c.DirectoryURL = "http://ca.example.org/dir" }, []string{"https"}},
		{"several at once", func(c *server.ACMEConfig) { c.Hosts = []string{"a", "b.c"}; c.Email = ""; c.CacheDir = "" },
			[]string{`"a"`, "e-mail", "cache directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := server.NewACME(c); err == nil {
				t.Error("NewACME accepted it")
			}
		})
	}
}

// TestACMECacheTightened: a cache directory readable by others (it holds
// private keys) is made owner-only before anything is written to it.
func TestACMECacheTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acme")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // past the umask
		t.Fatal(err)
	}
	var logs lockedBuffer
	if _, err := server.NewACME(server.ACMEConfig{Hosts: []string{"ehr.example.org"}, Email: "ops@example.org",
		CacheDir: dir, Log: slog.New(slog.NewJSONHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	checkOwnerOnly(t, dir)
	if !strings.Contains(logs.String(), "readable by others") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}
