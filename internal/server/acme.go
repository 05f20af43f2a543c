package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEConfig says which public host names get certificates from which
// ACME certificate authority, and where they are kept.
type ACMEConfig struct {
	// Hosts are the DNS names to obtain certificates for; handshakes for
	// any other name (or none) get no certificate. Required.
	Hosts []string
	// Email is the contact the CA is told about (expiry and revocation
	// notices). Required.
	Email string
	// DirectoryURL is the CA's ACME directory (https); empty: Let's
	// Encrypt's production directory.
	DirectoryURL string
	// CARoots verifies the directory's HTTPS certificate; nil: the system
	// roots. For a private CA (step-ca, Pebble) name its TLS root here.
	CARoots *x509.CertPool
	// CacheDir keeps the ACME account key and every certificate with its
	// private key, unencrypted (DIR/tls/acme). It is created 0700, and
	// tightened to 0700 if it exists with wider permissions. Required.
	CacheDir string
	Log      *slog.Logger
}

// Validate reports every problem with c at once.
func (c ACMEConfig) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("ACME: at least one host name is required"))
	}
	for _, h := range c.Hosts {
		if err := checkACMEHost(h); err != nil {
			errs = append(errs, err)
		}
	}
	if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email || a.Name != "" {
		errs = append(errs, fmt.Errorf("ACME: contact e-mail %q is not a plain address like ops@example.org", c.Email))
	}
	if c.DirectoryURL != "" {
		if u, err := url.Parse(c.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("ACME: directory %q is not an https URL (RFC 8555 requires HTTPS)", c.DirectoryURL))
		}
	}
	if c.CacheDir == "" {
		errs = append(errs, errors.New("ACME: a cache directory is required"))
	}
	return errors.Join(errs...)
}

// checkACMEHost accepts a fully qualified DNS name without wildcard, port
// or trailing dot: what a CA can validate over TLS-ALPN-01 or HTTP-01.
func checkACMEHost(h string) error {
	bad := func(why string) error { return fmt.Errorf("ACME: host %q %s", h, why) }
	switch {
	case h == "":
		return bad("is empty")
	case len(h) > 253:
		return bad("is longer than 253 characters")
	case net.ParseIP(h) != nil:
		return bad("is an IP address; ACME certificates here are for DNS names")
	case !strings.Contains(h, "."):
		return bad("is not a fully qualified name (no dot)")
	case strings.HasPrefix(h, "*"):
		return bad("is a wildcard; wildcards need DNS-01, which is not supported")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return bad("has an empty, too long or hyphen-edged label")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return bad("must be lower-case letters, digits, '-' and '.' (write IDNs in punycode)")
			}
		}
	}
	return nil
}

// ACME serves certificates obtained from an ACME CA through
// golang.org/x/crypto/acme/autocert: the first handshake for a configured
// host (or Prefetch) orders a certificate, validated by TLS-ALPN-01 on the
// listener itself (and HTTP-01 when HTTPHandler is served); certificates
// are cached in CacheDir and renewed 30 days before they expire, in the
// background, while the cached one stays in service.
//
// Use it as the CertSource of NewTLSConfig, which adds the acme-tls/1
// protocol (NextProtos) that TLS-ALPN-01 needs.
type ACME struct {
	m     *autocert.Manager
	hosts []string
	log   *slog.Logger
}

// NewACME checks c and prepares the cache directory; it contacts no CA.
func NewACME(c ACMEConfig) (*ACME, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(c.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache: %w", err)
	}
	if fi, err := os.Stat(c.CacheDir); err != nil {
		return nil, fmt.Errorf("ACME cache: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(c.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("ACME cache %s is readable by others and cannot be tightened: %w", c.CacheDir, err)
		}
		c.Log.Warn("ACME cache directory was readable by others; set to 0700", "dir", c.CacheDir)
	}
	dir := c.DirectoryURL
	if dir == "" {
		dir = autocert.DefaultACMEDirectory
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: c.CARoots, MinVersion: tls.VersionTLS12}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(c.CacheDir),
		HostPolicy: autocert.HostWhitelist(c.Hosts...),
		Email:      c.Email,
		Client: &acme.Client{
			DirectoryURL: dir,
			UserAgent:    "phivault",
			HTTPClient:   &http.Client{Transport: tr, Timeout: time.Minute},
		},
	}
	return &ACME{m: m, hosts: slices.Clone(c.Hosts), log: c.Log}, nil
}

// GetCertificate is for tls.Config: the certificate for hello's server
// name, ordering it from the CA on first use (the handshake then waits
// for the order, up to a few minutes). A name outside the configured hosts,
// or no name at all, gets an error and so a failed handshake.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		return a.m.GetCertificate(hello) // a CA's TLS-ALPN-01 validation
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if !slices.Contains(a.hosts, name) {
		// Scanners try every name; keep this out of the normal log.
		a.log.Debug("TLS handshake for a host name with no ACME certificate refused", "server_name", strconv.Quote(truncate(hello.ServerName, 80)))
		return nil, fmt.Errorf("no certificate for server name %q", truncate(hello.ServerName, 80))
	}
	c, err := a.m.GetCertificate(ecdsaHello(hello))
	if err != nil {
		a.log.Error("ACME certificate unavailable", "host", name, "err", err.Error())
	}
	return c, err
}

// ecdsaHello makes autocert choose an ECDSA P-256 certificate for every
// client. autocert decides by the TLS 1.2 cipher suites offered, but this
// listener speaks only TLS 1.3, whose clients must all support
// ecdsa_secp256r1_sha256 (RFC 8446, 9.1); without this a client offering
// only TLS 1.3 suites would make autocert order a second, RSA certificate.
func ecdsaHello(hello *tls.ClientHelloInfo) *tls.ClientHelloInfo {
	h := *hello
	h.CipherSuites = append(slices.Clone(hello.CipherSuites), tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	return &h
}

// NextProtos is the ALPN protocol TLS-ALPN-01 validation uses; NewTLSConfig
// adds it. A client that does not offer it never negotiates it.
func (a *ACME) NextProtos() []string { return []string{acme.ALPNProto} }

// Prefetch obtains (or loads from the cache) the certificate of every
// configured host, so that the first client does not wait for the CA, and
// logs the outcome of each. Run it in the background once the listener
// accepts connections: the CA validates through it. It returns the first
// error; an order in progress is not cancelled by ctx (autocert bounds it
// to five minutes), but no further host is tried once ctx is done.
func (a *ACME) Prefetch(ctx context.Context) error {
	var first error
	for _, h := range a.hosts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hello := &tls.ClientHelloInfo{ServerName: h, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves: []tls.CurveID{tls.CurveP256}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
		c, err := a.m.GetCertificate(hello)
		if err != nil {
			a.log.Error("ACME certificate could not be obtained; handshakes for this host fail until it is", "host", h, "err", err.Error())
			if first == nil {
				first = fmt.Errorf("ACME certificate for %s: %w", h, err)
			}
			continue
		}
		if leaf, err := leafOf(c); err == nil {
			a.log.Info("ACME certificate in service", "host", h, "serial", leaf.SerialNumber.Text(16),
				"issuer", leaf.Issuer.CommonName, "not_after", leaf.NotAfter)
		}
	}
	return first
}

// HTTPHandler serves HTTP-01 challenges (and makes the CA offer them) on
// a plain-HTTP listener, normally port 80. Any other GET or HEAD for a
// configured host is redirected to https on httpsPort; everything else
// gets 400 (no redirect to a host the client names, so no open redirect).
func (a *ACME) HTTPHandler(httpsPort int) http.Handler {
	h := a.m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !slices.Contains(a.hosts, host) {
			http.Error(w, "use HTTPS", http.StatusBadRequest)
			return
		}
		if httpsPort != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(httpsPort))
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	}))
	// autocert checks the Host header against the policy as it comes; a
	// "host:80" (allowed by RFC 9110) would fail it.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r = r.Clone(r.Context())
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// LoadCertPool reads a PEM bundle of CA certificates.
func LoadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
