package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
)

// startSyslogSink starts sending every audit event to the syslog server
// at target (tls://host:port), verified against the CA bundle caFile, and
// returns the function that stops it. With no target it does nothing.
func (n *node) startSyslogSink(ctx context.Context, target, caFile string, log *slog.Logger) (stop func(), err error) {
	job, err := n.syslogJob(target, caFile, log)
	if err != nil {
		return nil, err
	}
	if job.run == nil {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { job.run(ctx, n.db) })
	return func() { cancel(); wg.Wait() }, nil
}

// syslogJob checks the --syslog and --syslog-ca flags and returns the job
// (leadJobs) that sends every audit event to the syslog server at target
// (tls://host:port), verified against the CA bundle caFile, from a cursor
// kept in the store. With no target it returns the zero job (no run).
func (n *node) syslogJob(target, caFile string, log *slog.Logger) (leaderJob, error) {
	if target == "" {
		if caFile != "" {
			return leaderJob{}, fail(exitUsage, "--syslog-ca needs --syslog", "e.g. --syslog tls://siem.example:6514 --syslog-ca siem-ca.pem")
		}
		return leaderJob{}, nil
	}
	addr, err := audit.ParseSyslogURL(target)
	if err != nil {
		return leaderJob{}, fail(exitUsage, "--syslog must be tls://host:port", "e.g. --syslog tls://siem.example:6514 --syslog-ca siem-ca.pem")
	}
	if caFile == "" {
		return leaderJob{}, fail(exitUsage, "--syslog needs --syslog-ca", "the CA bundle (PEM) that issued the syslog server's certificate")
	}
	tc, err := audit.SyslogTLS(caFile)
	if err != nil {
		return leaderJob{}, fail(exitUsage, err.Error(), "--syslog-ca takes a PEM file of CA certificates")
	}
	conf := func(st store.Backend) audit.SyslogConfig {
		return audit.SyslogConfig{Log: n.audit.Prover(), Store: st, Addr: addr, TLS: tc, Logger: log}
	}
	if _, err := audit.NewSyslogSink(conf(n.db)); err != nil {
		return leaderJob{}, fail(exitUsage, err.Error(), "")
	}
	return leaderJob{name: "audit-syslog", run: func(ctx context.Context, st store.Backend) {
		sink, err := audit.NewSyslogSink(conf(st))
		if err != nil { // checked above
			log.Error("audit: cannot start the syslog sink", "err", err)
			return
		}
		log.Info("audit: sending events to syslog", "addr", addr)
		sink.Run(ctx)
	}}, nil
}
