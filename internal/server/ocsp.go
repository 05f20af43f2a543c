package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// CertSource gives the certificate for a handshake: *CertReloader, *ACME
// or *OCSPStapler. A source may also have a NextProtos() []string method,
// whose ALPN protocols NewTLSConfig adds (ACME's acme-tls/1).
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

var (
	_ CertSource = (*CertReloader)(nil)
	_ CertSource = (*ACME)(nil)
	_ CertSource = (*OCSPStapler)(nil)
)

// Errors an OCSP refresh reports.
var (
	ErrOCSPRevoked = errors.New("the OCSP responder says the certificate is revoked")
	ErrOCSPInvalid = errors.New("invalid OCSP response")
)

const (
	ocspMaxResponse = 64 << 10
	ocspMaxEntries  = 1000
	ocspSkew        = 5 * time.Minute
	ocspMinWait     = time.Minute
	ocspMaxBackoff  = time.Hour
	ocspForget      = 7 * 24 * time.Hour // entries unused this long are dropped
)

// OCSPStapler staples OCSP responses to the certificates of another
// CertSource. A certificate qualifies when it names an OCSP responder
// (http or https) and its chain includes the issuer that signed it. Its
// response is fetched in the background and stapled only when it
// verifies: signed by the issuer (or by a responder certificate the issuer
// issued for OCSP signing), for this certificate's serial, status good,
// not from the future and before its NextUpdate (a response without one
// is refused). It is refreshed half-way between ThisUpdate and NextUpdate,
// with backoff (one minute doubling to an hour) when the responder fails;
// a response past its NextUpdate is never stapled.
//
// A handshake never waits for the responder: until a response is held the
// certificate goes out without a staple. A certificate the responder
// reports revoked is still served, without a staple, and an error is
// logged at every check (see docs/tls.md for why it is not refused).
//
// All methods are safe for concurrent use.
type OCSPStapler struct {
	src    CertSource
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*stapleEntry
	// byPtr skips hashing the leaf in the common case: sources hand out
	// the same *tls.Certificate until it changes. A nil value: does not
	// qualify. It is only a cache, emptied when it grows large.
	byPtr map[*tls.Certificate]*stapleEntry
}

// stapleEntry is one certificate's OCSP state. url is empty for a
// certificate that does not qualify.
type stapleEntry struct {
	leaf, issuer *x509.Certificate
	url          string

	der                    []byte // the response in service; nil: none
	gen                    int    // counts changes of der
	stapled                *tls.Certificate
	stapledFrom            *tls.Certificate // source certificate stapled was made from
	stapledGen             int
	thisUpdate, nextUpdate time.Time
	due                    time.Time // when to fetch next
	failures               int
	fetching               chan struct{} // non-nil while a fetch is in flight; closed when it ends
	lastUsed               time.Time
}

// NewOCSPStapler staples responses to src's certificates. Start Run for
// refreshes.
func NewOCSPStapler(src CertSource, log *slog.Logger) *OCSPStapler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OCSPStapler{src: src, log: log, now: time.Now,
		client:  &http.Client{Timeout: 10 * time.Second},
		entries: map[[sha256.Size]byte]*stapleEntry{}, byPtr: map[*tls.Certificate]*stapleEntry{}}
}

// GetCertificate returns src's certificate with its OCSP response stapled
// when a valid one is held; it starts a background fetch for a certificate
// it has not seen or whose refresh is due, and never waits for it.
func (s *OCSPStapler) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := s.src.GetCertificate(hello)
	if err != nil || c == nil {
		return c, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byPtr[c]
	if !ok {
		e = s.entryLocked(c, now)
		if len(s.byPtr) >= 2*ocspMaxEntries {
			clear(s.byPtr)
		}
		s.byPtr[c] = e
	}
	if e == nil {
		return c, nil
	}
	e.lastUsed = now
	if e.fetching == nil && !now.Before(e.due) {
		e.fetching = make(chan struct{})
		go s.fetch(context.Background(), e)
	}
	if e.der == nil || !now.Before(e.nextUpdate) {
		return c, nil
	}
	if e.stapledFrom != c || e.stapledGen != e.gen {
		cc := *c
		cc.OCSPStaple = e.der
		e.stapled, e.stapledFrom, e.stapledGen = &cc, c, e.gen
	}
	return e.stapled, nil
}

// NextProtos passes on src's ALPN protocols.
func (s *OCSPStapler) NextProtos() []string {
	if p, ok := s.src.(interface{ NextProtos() []string }); ok {
		return p.NextProtos()
	}
	return nil
}

// entryLocked finds or makes c's entry; nil when c does not qualify.
func (s *OCSPStapler) entryLocked(c *tls.Certificate, now time.Time) *stapleEntry {
	if len(c.Certificate) == 0 {
		return nil
	}
	key := sha256.Sum256(c.Certificate[0])
	if e, ok := s.entries[key]; ok {
		if e.url == "" {
			return nil
		}
		return e
	}
	if len(s.entries) >= ocspMaxEntries {
		return nil
	}
	e := &stapleEntry{lastUsed: now, due: now}
	s.entries[key] = e
	leaf, err := leafOf(c)
	if err != nil || len(leaf.OCSPServer) == 0 {
		return nil
	}
	u, err := url.Parse(leaf.OCSPServer[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.log.Warn("certificate's OCSP responder URL is not http(s); not stapling", "serial", leaf.SerialNumber.Text(16))
		return nil
	}
	if len(c.Certificate) < 2 {
		s.log.Warn("certificate chain has no issuer certificate; OCSP stapling needs it (put the intermediate after the leaf)",
			"serial", leaf.SerialNumber.Text(16))
		return nil
	}
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil || leaf.CheckSignatureFrom(issuer) != nil {
		s.log.Warn("second certificate of the chain did not issue the leaf; not stapling", "serial", leaf.SerialNumber.Text(16))
		return nil
	}
	e.leaf, e.issuer, e.url = leaf, issuer, u.String()
	return e
}

func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}

// Prefetch fetches the responses for src's certificates for each server
// name (one fetch with no name when none is given) and waits for them, so
// that the first clients already get a staple. A fetch already in flight
// (one a handshake started, perhaps before the responder could answer) is
// waited for and then followed by Prefetch's own. It returns the errors.
func (s *OCSPStapler) Prefetch(ctx context.Context, serverNames ...string) error {
	if len(serverNames) == 0 {
		serverNames = []string{""}
	}
	var errs []error
	for _, name := range serverNames {
		c, err := s.src.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.prefetch(ctx, c))
	}
	return errors.Join(errs...)
}

// prefetch fetches c's response once no other fetch for it is in flight.
func (s *OCSPStapler) prefetch(ctx context.Context, c *tls.Certificate) error {
	for {
		s.mu.Lock()
		e := s.entryLocked(c, s.now())
		if e == nil {
			s.mu.Unlock()
			return nil
		}
		if busy := e.fetching; busy != nil {
			s.mu.Unlock()
			select {
			case <-busy:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		e.fetching = make(chan struct{})
		s.mu.Unlock()
		return s.fetch(ctx, e)
	}
}

// Run refreshes responses when they are due, checking every interval
// (default one minute), and forgets certificates unused for a week, until
// ctx is done.
func (s *OCSPStapler) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	poll(ctx, interval, func() { s.refreshDue(ctx) })
}

// refreshDue starts a fetch for each entry that is due.
func (s *OCSPStapler) refreshDue(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if now.Sub(e.lastUsed) > ocspForget || (e.leaf != nil && now.After(e.leaf.NotAfter)) {
			delete(s.entries, k)
			for c, pe := range s.byPtr {
				if pe == e {
					delete(s.byPtr, c)
				}
			}
			continue
		}
		if e.url != "" && e.fetching == nil && !now.Before(e.due) {
			e.fetching = make(chan struct{})
			go s.fetch(ctx, e)
		}
	}
}

// fetch asks e's responder and updates e. The caller has set e.fetching.
func (s *OCSPStapler) fetch(ctx context.Context, e *stapleEntry) error {
	der, r, err := s.query(ctx, e)
	now := s.now()
	if err == nil {
		err = checkOCSP(r, e, now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	close(e.fetching)
	e.fetching = nil
	serial := e.leaf.SerialNumber.Text(16)
	switch {
	case err == nil:
		e.der, e.thisUpdate, e.nextUpdate, e.failures = der, r.ThisUpdate, r.NextUpdate, 0
		e.gen++
		e.due = r.ThisUpdate.Add(r.NextUpdate.Sub(r.ThisUpdate) / 2)
		if e.due.Before(now.Add(ocspMinWait)) {
			e.due = now.Add(ocspMinWait)
		}
		s.log.Info("OCSP response stapled", "serial", serial, "this_update", r.ThisUpdate, "next_update", r.NextUpdate, "refresh_at", e.due)
		return nil
	case errors.Is(err, ErrOCSPRevoked):
		// A newer, authentic "revoked" supersedes any "good" held.
		e.der, e.failures, e.due = nil, 0, now.Add(ocspMaxBackoff)
		e.gen++
		s.log.Error("TLS certificate REVOKED by its CA; serving it without an OCSP staple - replace it now",
			"serial", serial, "responder", e.url, "revoked_at", r.RevokedAt, "reason", r.RevocationReason)
		return fmt.Errorf("certificate %s: %w", serial, err)
	default:
		e.failures++
		wait := ocspMinWait << min(e.failures-1, 6)
		e.due = now.Add(min(wait, ocspMaxBackoff))
		held := e.der != nil && now.Before(e.nextUpdate)
		s.log.Warn("OCSP refresh failed", "serial", serial, "responder", e.url, "err", err.Error(),
			"still_stapling", held, "retry_at", e.due)
		return fmt.Errorf("OCSP for certificate %s: %w", serial, err)
	}
}

// query sends an OCSP request for e and parses the answer, verifying its
// signature against e's issuer.
func (s *OCSPStapler) query(ctx context.Context, e *stapleEntry) ([]byte, *ocsp.Response, error) {
	body, err := ocsp.CreateRequest(e.leaf, e.issuer, nil)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("responder answered HTTP %d", resp.StatusCode)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, ocspMaxResponse+1))
	if err != nil {
		return nil, nil, err
	}
	if len(der) > ocspMaxResponse {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrOCSPInvalid, ocspMaxResponse)
	}
	// Without an issuer, ParseResponseForCert checks the signature against
	// the certificate the response carries, if any; checkOCSP then checks
	// who that is. (Given the issuer, it would refuse a response that
	// carries the issuer's own certificate, as openssl's responder sends.)
	r, err := ocsp.ParseResponseForCert(der, e.leaf, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrOCSPInvalid, err)
	}
	return der, r, nil
}

// checkOCSP checks that r was signed by e's issuer or by a responder
// certificate the issuer issued for OCSP signing that is valid now (RFC
// 6960, 4.2.2.2), that the status is good and that r is current.
func checkOCSP(r *ocsp.Response, e *stapleEntry, now time.Time) error {
	if rc := r.Certificate; rc == nil || rc.Equal(e.issuer) {
		if err := r.CheckSignatureFrom(e.issuer); err != nil {
			return fmt.Errorf("%w: not signed by the certificate's issuer: %v", ErrOCSPInvalid, err)
		}
	} else {
		// r's signature by rc was checked when it was parsed.
		if err := rc.CheckSignatureFrom(e.issuer); err != nil {
			return fmt.Errorf("%w: responder certificate not issued by the certificate's issuer: %v", ErrOCSPInvalid, err)
		}
		ok := false
		for _, u := range rc.ExtKeyUsage {
			ok = ok || u == x509.ExtKeyUsageOCSPSigning
		}
		if !ok {
			return fmt.Errorf("%w: responder certificate is not for OCSP signing", ErrOCSPInvalid)
		}
		if now.Before(rc.NotBefore) || now.After(rc.NotAfter) {
			return fmt.Errorf("%w: responder certificate expired or not yet valid", ErrOCSPInvalid)
		}
	}
	switch r.Status {
	case ocsp.Good:
	case ocsp.Revoked:
		return ErrOCSPRevoked
	default:
		return fmt.Errorf("%w: status unknown to the responder", ErrOCSPInvalid)
	}
	if r.ThisUpdate.After(now.Add(ocspSkew)) {
		return fmt.Errorf("%w: thisUpdate %s is in the future", ErrOCSPInvalid, r.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if r.NextUpdate.IsZero() {
		return fmt.Errorf("%w: no nextUpdate, so no way to tell when it goes stale", ErrOCSPInvalid)
	}
	if !now.Before(r.NextUpdate) {
		return fmt.Errorf("%w: expired at %s", ErrOCSPInvalid, r.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}
