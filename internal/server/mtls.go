package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/policy"
)

// Errors a client certificate check returns. The client sees only that its
// certificate was refused; the reason goes to the log and the audit record.
var (
	ErrNoClientCert        = errors.New("no client certificate")
	ErrClientCertUntrusted = errors.New("client certificate not issued by a trusted device CA, expired or not for client authentication")
	ErrClientCertRevoked   = errors.New("client certificate revoked")
	ErrCRLOutOfDate        = errors.New("the certificate revocation list is past its next update; revocation status unknown")
	ErrNoDeviceName        = errors.New("client certificate has no usable common name")
)

// Recorder appends an audit event durably or fails (*audit.Log).
type Recorder interface {
	Record(ctx context.Context, e *audit.Event) error
}

var _ Recorder = (*audit.Log)(nil)

// ClientCAsConfig says where the device CA bundle and its CRL are.
type ClientCAsConfig struct {
	// CAFile is a PEM bundle of the CA certificates that issue device and
	// partner client certificates. Required.
	CAFile string
	// CRLFile holds certificate revocation lists (PEM "X509 CRL" blocks or
	// one DER list), each signed by a CA in CAFile. Empty: no revocation
	// list (logged as a warning; revocation then means removing the CA).
	CRLFile string
	Log     *slog.Logger
	// Audit receives a record of every refused device request; if it
	// cannot, the request gets 503. Required.
	Audit Recorder
}

// ClientCAs verifies client certificates against a CA bundle and a CRL,
// both read from files and reloaded on change (Watch) or on demand
// (Reload). A reload that fails keeps the previous bundle and CRL.
//
// A certificate is accepted when it chains to the bundle, is valid now, is
// meant for client authentication, is not on the CRL, and the CRL is not
// past its next update (an out-of-date CRL refuses every client
// certificate: revocation status is unknown). The check runs in every
// handshake where a certificate is presented (so a revoked certificate
// fails the handshake, also on session resumption) and again on every
// request through RequireClientCert (so a certificate revoked or expired
// while its connection is open stops working at once).
//
// All methods are safe for concurrent use.
type ClientCAs struct {
	cfg ClientCAsConfig
	log *slog.Logger
	now func() time.Time

	trust atomic.Pointer[clientTrust]
	mu    sync.Mutex
	seen  fileStamp
}

// clientTrust is one loaded version of the bundle and the CRL.
type clientTrust struct {
	pool       *x509.CertPool
	revoked    map[string]bool // revocationKey(issuer, serial)
	nextUpdate time.Time       // earliest NextUpdate of the CRLs; zero: none

	// verified caches chain verification against pool, so a request on a
	// device connection costs a map lookup instead of a signature check:
	// SHA-256 of the leaf -> earliest NotAfter in its chain. Only
	// certificates that verified are cached (bounded by maxVerified); a
	// reload starts a new, empty cache.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]time.Time
}

const maxVerified = 10000

// chainOK verifies leaf against t's pool at now, using the cache.
func (t *clientTrust) chainOK(leaf *x509.Certificate, inter []*x509.Certificate, now time.Time) error {
	key := sha256.Sum256(leaf.Raw)
	t.mu.Lock()
	until, ok := t.verified[key]
	t.mu.Unlock()
	if ok && !now.After(until) && !now.Before(leaf.NotBefore) {
		return nil
	}
	pool := x509.NewCertPool()
	for _, ic := range inter {
		pool.AddCert(ic)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: t.pool, Intermediates: pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return err
	}
	until = leaf.NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	t.mu.Lock()
	if len(t.verified) < maxVerified {
		t.verified[key] = until
	}
	t.mu.Unlock()
	return nil
}

// NewClientCAs loads the bundle and CRL; it fails if either does not load.
func NewClientCAs(c ClientCAsConfig) (*ClientCAs, error) {
	if c.CAFile == "" {
		return nil, errors.New("mTLS: a client CA bundle file is required")
	}
	if c.Audit == nil {
		return nil, errors.New("mTLS: an audit recorder is required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	cc := &ClientCAs{cfg: c, log: c.Log, now: time.Now}
	cc.seen = stampOf(c.CAFile, c.CRLFile)
	t, err := cc.load()
	if err != nil {
		return nil, err
	}
	if c.CRLFile == "" {
		cc.log.Warn("mTLS without a certificate revocation list: a device certificate can only be revoked by removing its CA", "ca_file", c.CAFile)
	}
	cc.trust.Store(t)
	return cc, nil
}

// Reload reads the bundle and CRL again; on error nothing changes. Hook it
// to SIGHUP.
func (c *ClientCAs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = stampOf(c.cfg.CAFile, c.cfg.CRLFile)
	return c.reloadLocked()
}

func (c *ClientCAs) reloadLocked() error {
	t, err := c.load()
	if err != nil {
		c.log.Error("mTLS CA bundle or CRL reload failed; keeping the previous ones",
			"ca_file", c.cfg.CAFile, "crl_file", c.cfg.CRLFile, "err", err.Error())
		return err
	}
	c.trust.Store(t)
	c.log.Info("mTLS CA bundle and CRL reloaded", "ca_file", c.cfg.CAFile, "crl_file", c.cfg.CRLFile,
		"revoked", len(t.revoked), "crl_next_update", t.nextUpdate)
	return nil
}

// Watch polls both files every interval (default 5s) and reloads when one
// changed. It returns when ctx is done.
func (c *ClientCAs) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if s := stampOf(c.cfg.CAFile, c.cfg.CRLFile); s != c.seen {
			c.seen = s
			c.reloadLocked()
		}
	})
}

// Verify checks a presented chain (leaf first) as described on ClientCAs
// and returns the leaf.
func (c *ClientCAs) Verify(chain []*x509.Certificate) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, ErrNoClientCert
	}
	t, now, leaf := c.trust.Load(), c.now(), chain[0]
	if err := t.chainOK(leaf, chain[1:], now); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClientCertUntrusted, err)
	}
	if t.revoked[revocationKey(leaf.RawIssuer, leaf.SerialNumber.Bytes())] {
		return nil, ErrClientCertRevoked
	}
	if !t.nextUpdate.IsZero() && now.After(t.nextUpdate) {
		return nil, ErrCRLOutOfDate
	}
	return leaf, nil
}

// configure makes tc ask for (not require) a client certificate and verify
// one that is presented against the current bundle and CRL.
func (c *ClientCAs) configure(tc *tls.Config) {
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	tc.ClientCAs = c.trust.Load().pool
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // no certificate: RequireClientCert refuses device routes
		}
		_, err := c.Verify(cs.PeerCertificates)
		return err
	}
	// The pool crypto/tls verifies against is fixed in a Config; hand each
	// handshake a copy holding the pool loaded last.
	tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		per := tc.Clone()
		per.GetConfigForClient = nil
		per.ClientCAs = c.trust.Load().pool
		return per, nil
	}
}

// RequireClientCert admits only requests over a connection with a client
// certificate that passes Verify now, and puts the device's principal
// (DeviceFromCert) in the request context. Anything else gets 403 with an
// OperationOutcome and an audit record (503 if that cannot be written).
func (c *ClientCAs) RequireClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var chain []*x509.Certificate
		if r.TLS != nil {
			chain = r.TLS.PeerCertificates
		}
		leaf, err := c.Verify(chain)
		var p policy.Principal
		if err == nil {
			var ok bool
			if p, ok = DeviceFromCert(leaf); !ok {
				err = ErrNoDeviceName
			}
		}
		if err == nil {
			next.ServeHTTP(w, r.WithContext(policy.WithPrincipal(r.Context(), p)))
			return
		}
		c.refuse(w, r, leaf, chain, err)
	})
}

func (c *ClientCAs) refuse(w http.ResponseWriter, r *http.Request, leaf *x509.Certificate, chain []*x509.Certificate, err error) {
	ev := &audit.Event{Time: c.now(), Interaction: "login-failed", Action: "E", Outcome: audit.MinorFailure,
		OutcomeDesc: "device client certificate refused: " + err.Error(), SourceIP: hostOf(r.RemoteAddr),
		UserAgent: r.UserAgent(), AuthMethod: "mtls", Policies: []string{"authentication"}}
	if len(chain) > 0 {
		if p, ok := DeviceFromCert(chain[0]); ok {
			ev.UserID = p.UserID // as claimed; not verified
		}
	}
	c.log.Warn("device request refused", "reason", err.Error(), "claimed", ev.UserID, "source_ip", ev.SourceIP)
	status, msg := http.StatusForbidden, "a valid device client certificate is required"
	if errors.Is(err, ErrNoClientCert) {
		msg = "this endpoint requires a device client certificate (mutual TLS)"
	}
	if aerr := c.cfg.Audit.Record(r.Context(), ev); aerr != nil {
		status, msg = http.StatusServiceUnavailable, "the audit log is unavailable"
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"` + msg + `"}]}`))
}

// DeviceFromCert maps a verified device certificate to its principal:
// UserID "device:" + the subject common name, role "device", method
// "mtls". It reports false when the common name is empty, longer than 64
// bytes, or has characters other than letters, digits and ".-_@".
// The certificate must have been verified first (ClientCAs.Verify).
func DeviceFromCert(cert *x509.Certificate) (policy.Principal, bool) {
	if cert == nil {
		return policy.Principal{}, false
	}
	cn := cert.Subject.CommonName
	if cn == "" || len(cn) > 64 {
		return policy.Principal{}, false
	}
	for _, r := range cn {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_@", r)) {
			return policy.Principal{}, false
		}
	}
	return policy.Principal{UserID: "device:" + cn, Roles: []string{"device"}, Method: "mtls",
		AuthTime: time.Now(), SessionID: "mtls:" + cert.SerialNumber.Text(16)}, true
}
