package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CertReloader serves a certificate and key pair read from two PEM files
// and picks up new files without a restart. It is meant for
// tls.Config.GetCertificate: each new handshake gets the pair loaded last,
// while connections already established keep the keys they negotiated, so
// a reload never drops a connection.
//
// A reload that cannot load the new pair (missing or unreadable file, bad
// PEM, key not matching the certificate, certificate expired or not yet
// valid) changes nothing: the previous pair stays in service and the
// problem is logged (file names and the reason, never key material).
//
// All methods are safe for concurrent use.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	cur  atomic.Pointer[tls.Certificate]
	mu   sync.Mutex // serialises reloads
	seen fileStamp  // what the files looked like at the last attempt
}

// fileStamp identifies a version of a set of files: the modification time,
// size and SHA-256 of each. The digest catches a replacement within the
// file system's timestamp granularity with the same size (a renewed
// certificate often has the same length); the files are small, so reading
// them on every poll costs little.
type fileStamp [2]struct {
	mod  time.Time
	size int64
	sum  [sha256.Size]byte
	ok   bool
}

func stampOf(paths ...string) (s fileStamp) {
	for i, p := range paths {
		if p == "" || i >= len(s) {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s[i].mod, s[i].size, s[i].sum, s[i].ok = fi.ModTime(), fi.Size(), sha256.Sum256(data), true
	}
	return s
}

// NewCertReloader loads the pair from certFile and keyFile. It fails if the
// first load fails: a server must not start without a certificate.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	r.seen = stampOf(certFile, keyFile)
	c, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(c)
	return r, nil
}

// GetCertificate returns the pair in service; it never fails once
// NewCertReloader succeeded.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Leaf returns the certificate in service, parsed.
func (r *CertReloader) Leaf() *x509.Certificate { return r.cur.Load().Leaf }

// Reload reads the files again and puts the new pair in service. On error
// the pair in service is unchanged. Hook it to SIGHUP.
func (r *CertReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = stampOf(r.certFile, r.keyFile)
	return r.reloadLocked()
}

func (r *CertReloader) reloadLocked() error {
	c, err := r.load()
	if err != nil {
		r.log.Error("TLS certificate reload failed; still serving the previous certificate",
			"cert_file", r.certFile, "key_file", r.keyFile, "err", err.Error(),
			"serving_serial", r.Leaf().SerialNumber.Text(16))
		return err
	}
	old := r.cur.Swap(c)
	r.log.Info("TLS certificate reloaded", "cert_file", r.certFile,
		"subject", c.Leaf.Subject.CommonName, "serial", c.Leaf.SerialNumber.Text(16),
		"not_after", c.Leaf.NotAfter, "previous_serial", old.Leaf.SerialNumber.Text(16))
	return nil
}

// Watch polls the files every interval (default 5s) and reloads when their
// modification time, size or content changed. It returns when ctx is done. A failed
// reload is retried only after the files change again.
func (r *CertReloader) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, r.checkFiles)
}

func (r *CertReloader) checkFiles() {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := stampOf(r.certFile, r.keyFile)
	if s == r.seen {
		return
	}
	r.seen = s
	r.reloadLocked() // logged inside
}

// load reads and checks the pair without touching the one in service.
func (r *CertReloader) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	if c.Leaf == nil { // set by Go 1.23+; keep the check for clarity
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", r.certFile, err)
		}
	}
	now := r.now()
	if now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired on %s", r.certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.Leaf.NotBefore) {
		return nil, fmt.Errorf("TLS certificate %s is not valid before %s", r.certFile, c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// poll calls f every interval until ctx is done.
func poll(ctx context.Context, interval time.Duration, f func()) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
