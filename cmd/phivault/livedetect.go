package main

import (
	"context"
	"log/slog"

	"github.com/phivault/phivault/internal/detect"
	"github.com/phivault/phivault/internal/store"
)

// detectorJob returns the live detector on n's audit log, a cluster-wide
// job (leadJobs), and the alert store every node serves to officers under
// /fhir/_alerts and /fhir/_cases: alerts are kept sealed in the store, and
// new or changed ones are routed as routing says (webhook, email, syslog;
// nil: nowhere), from the store's outbox, by the leader.
func (n *node) detectorJob(ctx context.Context, routing *alertRouting, syslogCA string, log *slog.Logger) (alerts *detect.AlertStore, job leaderJob, err error) {
	if alerts, err = detect.NewAlertStore(ctx, n.db, n.barrier); err != nil {
		return nil, job, err
	}
	channels, err := routing.channels(syslogCA, log)
	if err != nil {
		return nil, job, err
	}
	return alerts, leaderJob{name: "live-detector", run: func(ctx context.Context, st store.Backend) {
		termAlerts, err := detect.NewAlertStore(ctx, st, n.barrier)
		if err != nil {
			log.Error("detect: cannot start the live detector", "err", err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		route, wait := startRouters(ctx, termAlerts, channels(), log)
		defer wait()
		defer cancel()
		detect.NewLive(detect.LiveConfig{
			Log: n.audit.Prover(), Alerts: termAlerts, Route: route, Logger: log,
			Directory: func(ctx context.Context) (*detect.Directory, error) { return detect.DirectoryFrom(ctx, n.records) },
		}).Run(ctx)
	}}, nil
}
