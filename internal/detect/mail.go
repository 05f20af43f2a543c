package detect

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// Secret is a password; it prints as **redacted**.
type Secret string

func (Secret) String() string       { return "**redacted**" }
func (Secret) GoString() string     { return "**redacted**" }
func (Secret) LogValue() slog.Value { return slog.StringValue("**redacted**") }

// ErrMailConfig means a Mail channel is misconfigured.
var ErrMailConfig = errors.New("detect: invalid alert email configuration")

// Mail routes alerts by email through an SMTP server (a Channel). Email
// is not a safe channel for patient data, so a message carries no patient
// id and nothing about a patient: the alert and case ids, severity, score,
// rule names, the user id, first and last seen, and a link to the case in
// phivault, where an officer signs in to see the rest. Each message has a
// stable Message-ID (the delivery's), so a resend after a failure or a
// restart can be recognised as a duplicate.
//
// The connection must be upgraded with STARTTLS (certificate verified)
// unless the server is on a loopback address or Insecure is set;
// authentication (PLAIN) happens only over TLS or to a loopback server.
type Mail struct {
	Addr     string   // host:port of the SMTP server
	From     string   // envelope and header sender
	To       []string // recipients
	Username string   // SMTP AUTH user; empty: no authentication
	Password Secret
	Insecure bool        // allow a plaintext connection to a non-loopback server
	TLS      *tls.Config // for STARTTLS; nil: the system roots, server name from Addr
	// CaseLink returns the URL of a case for officers, or "" while it is
	// not known yet (the message then waits and is retried).
	CaseLink func(caseID string) string
	Hostname string        // the name in EHLO; default os.Hostname
	Timeout  time.Duration // for one whole delivery; default 30 s
}

var _ Channel = (*Mail)(nil)

// Validate reports every problem with the configuration at once.
func (m *Mail) Validate() error {
	var errs []error
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil || host == "" {
		errs = append(errs, fmt.Errorf("the SMTP server must be host:port, got %q", m.Addr))
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		errs = append(errs, fmt.Errorf("sender %q is not an email address", m.From))
	}
	if len(m.To) == 0 {
		errs = append(errs, errors.New("no recipient"))
	}
	for _, to := range m.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fmt.Errorf("recipient %q is not an email address", to))
		}
	}
	if m.Password != "" && m.Username == "" {
		errs = append(errs, errors.New("a password without a user name"))
	}
	if m.Username != "" && m.Insecure && !loopback(host) {
		errs = append(errs, errors.New("SMTP authentication needs TLS: the password would cross the network in clear"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrMailConfig, errors.Join(errs...))
	}
	return nil
}

// loopback reports whether host is a loopback address or localhost.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Deliver sends one message for d to every recipient.
func (m *Mail) Deliver(ctx context.Context, d *Delivery) error {
	link := ""
	if m.CaseLink != nil {
		link = m.CaseLink(d.Alert.CaseID)
	}
	if link == "" {
		return errors.New("the case link is not known yet (the server is not listening)")
	}
	msg := m.message(d, link)
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(m.Addr)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	name := m.Hostname
	if name == "" {
		name, _ = os.Hostname()
	}
	if err := c.Hello(name); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc := m.TLS.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	} else if !m.Insecure && !loopback(host) {
		return errors.New("the SMTP server does not offer STARTTLS; refusing to send alerts in clear (use a server with TLS, or --alert-smtp-insecure)")
	}
	if m.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.Username, string(m.Password), host)); err != nil {
			return fmt.Errorf("SMTP authentication: %w", err)
		}
	}
	from, _ := mail.ParseAddress(m.From)
	if err := c.Mail(from.Address); err != nil {
		return err
	}
	for _, to := range m.To {
		a, _ := mail.ParseAddress(to)
		if err := c.Rcpt(a.Address); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// message renders the email for d. Every value comes from the alert's ids,
// rule names and times; headers are stripped of control characters.
func (m *Mail) message(d *Delivery, link string) []byte {
	a := d.Alert
	domain := "phivault.invalid"
	if from, err := mail.ParseAddress(m.From); err == nil {
		if at := strings.LastIndexByte(from.Address, '@'); at >= 0 {
			domain = from.Address[at+1:]
		}
	}
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + headerSafe(v) + "\r\n") }
	hdr("From", m.From)
	hdr("To", strings.Join(m.To, ", "))
	hdr("Subject", fmt.Sprintf("[phivault] %s alert %s: %s", a.Severity, a.ID, strings.Join(a.Rules, ", ")))
	hdr("Date", time.Now().UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+d.MessageID()+"@"+domain+">")
	hdr("X-Phivault-Alert", a.ID)
	hdr("X-Phivault-Case", a.CaseID)
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	var body strings.Builder
	fmt.Fprintf(&body, "phivault's privacy and threat monitoring raised or updated an alert.\n\n")
	fmt.Fprintf(&body, "Alert:      %s\nCase:       %s\nSeverity:   %s (score %.3f)\nRules:      %s\nUser:       %s\n",
		a.ID, a.CaseID, a.Severity, a.Score, strings.Join(a.Rules, ", "), a.UserID)
	fmt.Fprintf(&body, "First seen: %s\nLast seen:  %s\nEvents:     %d\n\n", a.FirstSeen.UTC().Format(time.RFC3339), a.LastSeen.UTC().Format(time.RFC3339), a.Events)
	fmt.Fprintf(&body, "Review the case (sign in as a privacy or security officer):\n%s\n\n", link)
	body.WriteString("This message names no patient on purpose: email is not a safe channel for patient data.\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(body.String(), "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}

// headerSafe drops control characters, so no value can start a new header.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
