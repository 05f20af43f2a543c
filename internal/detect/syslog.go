package detect

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// alertSDID is the structured-data element of an alert message; 32473 is
// the private enterprise number reserved for examples (RFC 5612), as in
// the audit log's syslog sink.
const alertSDID = "phivaultAlert@32473"

// Syslog routes alerts to a syslog server over TLS (a Channel): RFC 5424
// messages, RFC 5425 octet-counting framing, APP-NAME phivault, MSGID
// ALERT, facility 13 (log audit), severity critical for high alerts,
// warning for medium, notice for low. The structured data carries the
// alert's ids, rules, score, user, times and the patient's reference
// (the id, as the audit log's own syslog events do), never a patient's
// name or any other value from the record; the delivery id (seq) lets a
// receiver drop duplicates.
//
// TCP gives no acknowledgement: a message written within Confirm before
// the connection is found broken is sent again on the next connection
// (at least once).
type Syslog struct {
	Addr     string      // host:port
	TLS      *tls.Config // must verify the server (RootCAs; ServerName defaults to the host)
	Hostname string      // HOSTNAME field; default os.Hostname
	Confirm  time.Duration

	conn   *tls.Conn
	dead   chan struct{}
	unconf []sentFrame
}

type sentFrame struct {
	b  []byte
	at time.Time
}

var _ Channel = (*Syslog)(nil)

var _ Flusher = (*Syslog)(nil)

// Deliver writes d's message; Close the Syslog when done.
func (s *Syslog) Deliver(ctx context.Context, d *Delivery) error {
	if err := s.check(ctx, true); err != nil {
		return err
	}
	return s.write(alertFrame(d, s.Hostname))
}

// Flush forgets the messages that stayed Confirm on a live connection,
// and when the connection is found broken, reconnects and sends the
// others again. With nothing unconfirmed it does not connect.
func (s *Syslog) Flush(ctx context.Context) error { return s.check(ctx, false) }

// check is Flush; with connect it leaves a connection open for a write.
func (s *Syslog) check(ctx context.Context, connect bool) error {
	if s.Confirm <= 0 {
		s.Confirm = 2 * time.Second
	}
	if s.Hostname == "" {
		s.Hostname, _ = os.Hostname()
	}
	now := time.Now()
	if s.conn != nil {
		select {
		case <-s.dead:
			s.Close() // unconfirmed frames are resent below
		default:
			k := 0
			for k < len(s.unconf) && now.Sub(s.unconf[k].at) >= s.Confirm {
				k++
			}
			s.unconf = s.unconf[k:]
		}
	}
	if s.conn == nil && (connect || len(s.unconf) > 0) {
		if err := s.dial(ctx); err != nil {
			return err
		}
		old := s.unconf
		s.unconf = nil
		for _, f := range old {
			if err := s.write(f.b); err != nil {
				s.unconf = old
				return err
			}
		}
	}
	return nil
}

func (s *Syslog) dial(ctx context.Context) error {
	if s.TLS == nil || s.TLS.RootCAs == nil {
		return errors.New("the alert syslog channel needs a CA to verify the server")
	}
	tc := s.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(s.Addr)
	}
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	dl := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}, Config: tc}
	nc, err := dl.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	s.conn, s.dead = nc.(*tls.Conn), make(chan struct{})
	conn, dead := s.conn, s.dead
	go func() {
		// The server never writes: a read that returns means it closed
		// the connection or it broke.
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(dead)
	}()
	return nil
}

func (s *Syslog) write(frame []byte) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := s.conn.Write(frame); err != nil {
		s.Close() // the caller sends the frame again
		return err
	}
	s.unconf = append(s.unconf, sentFrame{frame, time.Now()})
	return nil
}

// Close closes the connection (the unconfirmed frames stay, to be resent).
func (s *Syslog) Close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// alertFrame renders d as one RFC 5425 frame.
func alertFrame(d *Delivery, host string) []byte {
	a := d.Alert
	sev := 5
	switch a.Severity {
	case "high":
		sev = 2
	case "medium":
		sev = 4
	}
	var m strings.Builder
	m.WriteString("<" + strconv.Itoa(13*8+sev) + ">1 " + time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00") + " ")
	m.WriteString(sdName(host) + " phivault - ALERT [" + alertSDID)
	param := func(k, v string) { m.WriteString(" " + k + `="` + sdEscape(v) + `"`) }
	param("id", a.ID)
	param("seq", strconv.FormatUint(d.Seq, 10))
	param("case", a.CaseID)
	param("severity", a.Severity)
	param("score", strconv.FormatFloat(a.Score, 'f', 3, 64))
	param("rules", strings.Join(a.Rules, ","))
	param("user", a.UserID)
	if a.PatientID != "" {
		param("patient", "Patient/"+a.PatientID)
	}
	param("first", a.FirstSeen.UTC().Format(time.RFC3339))
	param("last", a.LastSeen.UTC().Format(time.RFC3339))
	param("events", strconv.Itoa(a.Events))
	param("status", a.Status)
	m.WriteString("] phivault alert " + a.ID + " (" + a.Severity + "): " + strings.Join(a.Rules, ", "))
	return []byte(strconv.Itoa(m.Len()) + " " + m.String())
}

// sdEscape escapes an RFC 5424 PARAM-VALUE ('"', '\' and ']') and drops
// control characters.
func sdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == ']':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sdName returns s as an RFC 5424 header field: printable US-ASCII
// without spaces, at most 255 characters, NILVALUE when empty.
func sdName(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 255; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}
