package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/phivault/phivault/internal/audit"
)

// startSyslogSink starts sending every audit event to the syslog server
// at target (tls://host:port), verified against the CA bundle caFile, and
// returns the function that stops it. With no target it does nothing.
func (n *node) startSyslogSink(ctx context.Context, target, caFile string, log *slog.Logger) (stop func(), err error) {
	if target == "" {
		if caFile != "" {
			return nil, fail(exitUsage, "--syslog-ca needs --syslog", "e.g. --syslog tls://siem.example:6514 --syslog-ca siem-ca.pem")
		}
		return func() {}, nil
	}
	addr, err := audit.ParseSyslogURL(target)
	if err != nil {
		return nil, fail(exitUsage, "--syslog must be tls://host:port", "e.g. --syslog tls://siem.example:6514 --syslog-ca siem-ca.pem")
	}
	if caFile == "" {
		return nil, fail(exitUsage, "--syslog needs --syslog-ca", "the CA bundle (PEM) that issued the syslog server's certificate")
	}
	tc, err := audit.SyslogTLS(caFile)
	if err != nil {
		return nil, fail(exitUsage, err.Error(), "--syslog-ca takes a PEM file of CA certificates")
	}
	sink, err := audit.NewSyslogSink(audit.SyslogConfig{Log: n.audit.Prover(), Store: n.db, Addr: addr, TLS: tc, Logger: log})
	if err != nil {
		return nil, fail(exitUsage, err.Error(), "")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sink.Run(ctx) })
	log.Info("audit: sending events to syslog", "addr", addr)
	return func() { cancel(); wg.Wait() }, nil
}
