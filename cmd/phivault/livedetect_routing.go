package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/detect"
)

// alertRouting is where serve sends new and changed monitoring alerts:
// a webhook, email through an SMTP server, a syslog server. Each channel
// follows the store's outbox from its own cursor (detect.Router), so an
// alert raised while a destination is down reaches it when it is back.
type alertRouting struct {
	webhook          string
	smtp             string // smtp://[user@]host[:port]
	mailFrom, mailTo string
	smtpPassword     string // file holding the SMTP password
	smtpInsecure     bool
	syslog, syslogCA string
	base             atomic.Pointer[string] // the server's public base URL, once it listens
}

// register adds the routing flags to serve's flag set.
func (r *alertRouting) register(fs *flag.FlagSet) {
	fs.StringVar(&r.webhook, "alert-webhook", "", "POST every new monitoring alert as JSON to this URL (signed with PHIVAULT_WEBHOOK_SECRET when set)")
	fs.StringVar(&r.smtp, "alert-smtp", "", "email every new monitoring alert through this SMTP server, smtp://[user@]host[:port] (port 587 by default; STARTTLS required unless the host is loopback); the email names no patient")
	fs.StringVar(&r.mailFrom, "alert-mail-from", "", "sender address of alert emails")
	fs.StringVar(&r.mailTo, "alert-mail-to", "", "recipients of alert emails, comma-separated")
	fs.StringVar(&r.smtpPassword, "alert-smtp-password-file", "", "file holding the password of the --alert-smtp user (sent only over TLS or to a loopback server)")
	fs.BoolVar(&r.smtpInsecure, "alert-smtp-insecure", false, "allow --alert-smtp without STARTTLS to a non-loopback server (no authentication then)")
	fs.StringVar(&r.syslog, "alert-syslog", "", "send every new monitoring alert to this syslog server, tls://host:port (RFC 5424 over TLS)")
	fs.StringVar(&r.syslogCA, "alert-syslog-ca", "", "CA bundle (PEM) that verifies the --alert-syslog server (default: --syslog-ca)")
}

// setBase records the server's public base URL, for the case links in
// alert emails (which wait until it is known).
func (r *alertRouting) setBase(base string) {
	if r != nil {
		r.base.Store(&base)
	}
}

func (r *alertRouting) caseLink(id string) string {
	b := r.base.Load()
	if b == nil {
		return ""
	}
	return *b + "/fhir/_cases/" + url.PathEscape(id)
}

// channels checks the flags, reporting every problem at once, and returns
// a function that makes the configured channels (fresh ones for each
// leadership term: they hold connections). defaultCA is serve's
// --syslog-ca.
func (r *alertRouting) channels(defaultCA string, log *slog.Logger) (func() map[string]detect.Channel, error) {
	if r == nil {
		return func() map[string]detect.Channel { return nil }, nil
	}
	var problems, hints []string
	bad := func(p, hint string) { problems, hints = append(problems, p), append(hints, hint) }
	var wh *detect.Webhook
	if r.webhook != "" {
		u, err := url.Parse(r.webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("--alert-webhook must be an http(s) URL", "e.g. --alert-webhook https://siem.example/phivault")
		} else {
			wh = &detect.Webhook{URL: r.webhook, Secret: []byte(os.Getenv("PHIVAULT_WEBHOOK_SECRET")), Log: log}
		}
	}
	var mail *detect.Mail
	switch {
	case r.smtp != "":
		mail = r.mail(bad)
	case r.mailFrom != "" || r.mailTo != "" || r.smtpPassword != "" || r.smtpInsecure:
		bad("--alert-mail-from, --alert-mail-to, --alert-smtp-password-file and --alert-smtp-insecure need --alert-smtp", "e.g. --alert-smtp smtp://mail.example:587")
	}
	var sl *detect.Syslog
	if r.syslog != "" {
		addr, err := audit.ParseSyslogURL(r.syslog)
		ca := r.syslogCA
		if ca == "" {
			ca = defaultCA
		}
		switch {
		case err != nil:
			bad("--alert-syslog must be tls://host:port", "e.g. --alert-syslog tls://siem.example:6514")
		case ca == "":
			bad("--alert-syslog needs --alert-syslog-ca (or --syslog-ca)", "the CA bundle (PEM) that issued the syslog server's certificate")
		default:
			tc, err := audit.SyslogTLS(ca)
			if err != nil {
				bad(err.Error(), "--alert-syslog-ca takes a PEM file of CA certificates")
			} else {
				sl = &detect.Syslog{Addr: addr, TLS: tc}
			}
		}
	} else if r.syslogCA != "" {
		bad("--alert-syslog-ca needs --alert-syslog", "e.g. --alert-syslog tls://siem.example:6514")
	}
	if len(problems) > 0 {
		return nil, fail(exitUsage, strings.Join(problems, "; "), strings.Join(hints, "; "))
	}
	return func() map[string]detect.Channel {
		m := map[string]detect.Channel{}
		if wh != nil {
			m["webhook"] = wh
		}
		if mail != nil {
			m["email"] = mail
		}
		if sl != nil {
			m["syslog"] = &detect.Syslog{Addr: sl.Addr, TLS: sl.TLS}
		}
		return m
	}, nil
}

// mail builds the email channel from the flags, reporting problems to bad.
func (r *alertRouting) mail(bad func(problem, hint string)) *detect.Mail {
	u, err := url.Parse(r.smtp)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		bad("--alert-smtp must be smtp://[user@]host[:port]", "e.g. --alert-smtp smtp://alerts@mail.example:587")
		return nil
	}
	if _, ok := u.User.Password(); ok {
		bad("--alert-smtp must not hold the password", "put it in a file given with --alert-smtp-password-file")
		return nil
	}
	port := u.Port()
	if port == "" {
		port = "587"
	}
	m := &detect.Mail{Addr: net.JoinHostPort(u.Hostname(), port), From: r.mailFrom, Username: u.User.Username(),
		Insecure: r.smtpInsecure, CaseLink: r.caseLink}
	for _, to := range strings.Split(r.mailTo, ",") {
		if to = strings.TrimSpace(to); to != "" {
			m.To = append(m.To, to)
		}
	}
	if r.smtpPassword != "" {
		b, err := os.ReadFile(r.smtpPassword)
		if err != nil {
			bad("cannot read --alert-smtp-password-file: "+err.Error(), "the file holds the SMTP password on one line")
			return nil
		}
		m.Password = detect.Secret(strings.TrimRight(string(b), "\r\n"))
	}
	if err := m.Validate(); err != nil {
		bad(strings.ReplaceAll(err.Error(), "\n", "; "), "--alert-mail-from and --alert-mail-to take email addresses; a password needs TLS")
		return nil
	}
	return m
}

// startRouters runs one detect.Router per channel over alerts until ctx
// ends. wake tells them that alerts were stored (LiveConfig.Route); wait
// returns once they stopped.
func startRouters(ctx context.Context, alerts *detect.AlertStore, chans map[string]detect.Channel, log *slog.Logger) (wake func(*detect.StoredAlert), wait func()) {
	var routers []*detect.Router
	var wg sync.WaitGroup
	for name, ch := range chans {
		r := detect.NewRouter(detect.RouterConfig{Alerts: alerts, Name: name, Channel: ch, Logger: log})
		routers = append(routers, r)
		wg.Go(func() {
			r.Run(ctx)
			if s, ok := ch.(*detect.Syslog); ok {
				s.Close()
			}
		})
		log.Info("detect: routing alerts", "channel", name)
	}
	return func(*detect.StoredAlert) {
		for _, r := range routers {
			r.Wake()
		}
	}, wg.Wait
}
