package audit

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// syslogCursorKey is the store meta key holding the index of the next leaf
// the syslog sink has yet to deliver.
const syslogCursorKey = "audit/syslog-cursor"

// LeafSource is the audit log as a sink follows it (*Prover). Leaves are
// dense and append-only.
type LeafSource interface {
	// Size returns the number of leaves appended so far.
	Size(ctx context.Context) (uint64, error)
	// ScanLeaves calls fn for each leaf in [from, to), in order.
	ScanLeaves(ctx context.Context, from, to uint64, batch int, fn func(index uint64, leaf []byte) error) error
}

// SyslogConfig configures a SyslogSink.
type SyslogConfig struct {
	Log   LeafSource
	Store store.Backend // holds the cursor (meta key audit/syslog-cursor)
	Addr  string        // host:port of the syslog server (RFC 5425, TLS)
	TLS   *tls.Config   // must verify the server: RootCAs and ServerName
	// Hostname is the HOSTNAME field of every message; default os.Hostname.
	Hostname string
	Poll     time.Duration // how often the log is checked; default 1 s
	Batch    int           // leaves per write; default 512
	// Confirm is how long a connection must stay up after a batch was
	// flushed before the batch counts as delivered; default 2 s. TCP gives
	// no application acknowledgement, so a batch written just before the
	// server died is sent again on the next connection.
	Confirm    time.Duration
	MaxBackoff time.Duration // longest pause between reconnections; default 30 s
	// MaxMessage caps a message's length in bytes (default 190,000, under
	// rsyslog's default imtcp maxFrameSize); a longer event is sent with
	// fewer entities and its leaf hash (see frameSyslog).
	MaxMessage int
	Logger     *slog.Logger
}

// SyslogSink sends every audit event, in log order, to a syslog server
// over TLS: RFC 5424 messages with RFC 5425 octet-counting framing. The
// local log is the source of truth; the sink follows it from a cursor
// persisted in the store, so neither a restart of phivault nor one of the
// syslog server loses an event. Delivery is at least once: a batch counts
// as delivered only when the connection stayed up for Confirm after it was
// flushed, and anything not yet delivered is sent again after a reconnect
// or a restart. Every message carries its leaf index (structured data
// [phivault@32473 leaf="N"]) so a receiver can drop duplicates.
type SyslogSink struct {
	c      SyslogConfig
	sent   atomic.Uint64 // messages written, resends included (for tests and metrics)
	cursor atomic.Uint64 // delivered position, as persisted
}

// NewSyslogSink returns a sink; call Run.
func NewSyslogSink(c SyslogConfig) (*SyslogSink, error) {
	switch {
	case c.Log == nil || c.Store == nil:
		return nil, errors.New("audit: syslog sink needs the log and the store")
	case c.TLS == nil || c.TLS.RootCAs == nil:
		return nil, errors.New("audit: syslog sink needs a CA to verify the server")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("audit: syslog address %q: %v", c.Addr, err)
	}
	c.TLS = c.TLS.Clone()
	if c.TLS.MinVersion < tls.VersionTLS12 {
		c.TLS.MinVersion = tls.VersionTLS12 // rsyslog's gnutls driver may stop at 1.2
	}
	if c.TLS.ServerName == "" {
		c.TLS.ServerName, _, _ = net.SplitHostPort(c.Addr)
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 512
	}
	if c.Confirm <= 0 {
		c.Confirm = 2 * time.Second
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 190_000
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &SyslogSink{c: c}, nil
}

// ParseSyslogURL parses the --syslog flag, tls://host:port, into host:port.
func ParseSyslogURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "tls" || u.Host == "" || u.Port() == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return "", fmt.Errorf("syslog: want tls://host:port, got %q", s)
	}
	return u.Host, nil
}

// SyslogTLS returns a client TLS configuration that trusts only the CA
// certificates in the PEM file caFile.
func SyslogTLS(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("syslog CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("syslog CA: no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Delivered returns the number of leaves delivered (the persisted cursor).
func (s *SyslogSink) Delivered() uint64 { return s.cursor.Load() }

// Cursor reads the persisted cursor: the index of the next leaf to deliver.
func (s *SyslogSink) Cursor(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.c.Store.View(ctx, func(r store.Reader) error {
		v, err := r.Meta(syslogCursorKey)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err = strconv.ParseUint(string(v), 10, 64)
		return err
	})
	return n, err
}

func (s *SyslogSink) saveCursor(ctx context.Context, n uint64) error {
	err := s.c.Store.Update(ctx, func(w store.Writer) error {
		return w.SetMeta(syslogCursorKey, []byte(strconv.FormatUint(n, 10)))
	})
	if err == nil {
		s.cursor.Store(n)
	}
	return err
}

// Run delivers events until ctx ends. Errors are logged (once until the
// next success) and retried with exponential backoff; nothing is skipped.
func (s *SyslogSink) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	last := ""
	for ctx.Err() == nil {
		before := s.cursor.Load()
		err := s.session(ctx)
		if s.cursor.Load() != before {
			backoff = 100 * time.Millisecond // it worked for a while
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && err.Error() != last {
			last = err.Error()
			s.c.Logger.Warn("audit: syslog delivery interrupted; resending from the last delivered event", "addr", s.c.Addr, "err", last)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.c.MaxBackoff)
	}
}

// batchMark is a batch flushed but not yet confirmed.
type batchMark struct {
	end uint64
	at  time.Time
}

// session delivers over one connection until it fails or ctx ends.
func (s *SyslogSink) session(ctx context.Context) error {
	acked, err := s.Cursor(ctx)
	if err != nil {
		return err
	}
	s.cursor.Store(acked)
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}, Config: s.c.TLS}
	nc, err := d.DialContext(ctx, "tcp", s.c.Addr)
	if err != nil {
		return err
	}
	conn := nc.(*tls.Conn)
	defer conn.Close()
	// The server never writes; a read that returns means it closed the
	// connection (or it broke). Watching for it stops us from writing
	// into a connection the server has already left.
	dead := make(chan struct{})
	go func() {
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(dead)
	}()
	bw := bufio.NewWriterSize(conn, 64<<10)
	next := acked
	var pending []batchMark
	t := time.NewTicker(s.c.Poll)
	defer t.Stop()
	for {
		select {
		case <-dead:
			return errors.New("the server closed the connection")
		default:
		}
		// Confirm batches that survived Confirm on a live connection.
		now := time.Now()
		k := 0
		for k < len(pending) && now.Sub(pending[k].at) >= s.c.Confirm {
			k++
		}
		if k > 0 {
			if err := s.saveCursor(ctx, pending[k-1].end); err != nil {
				return err
			}
			pending = pending[k:]
		}
		size, err := s.c.Log.Size(ctx)
		if err != nil {
			return err
		}
		if next < size {
			// One batch, then back to the checks above: a long backlog
			// is confirmed (and the cursor saved) as it goes.
			end := min(size, next+uint64(s.c.Batch))
			// The buffer writes through as it fills: the deadline covers
			// the whole batch.
			_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			err := s.c.Log.ScanLeaves(ctx, next, end, s.c.Batch, func(i uint64, leaf []byte) error {
				_, err := bw.Write(frameSyslog(i, leaf, s.c.Hostname, s.c.MaxMessage))
				return err
			})
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				return err
			}
			s.sent.Add(end - next)
			pending = append(pending, batchMark{end, time.Now()})
			next = end
			if next < size {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dead:
			return errors.New("the server closed the connection")
		case <-t.C:
		}
	}
}
