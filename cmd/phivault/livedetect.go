package main

import (
	"context"
	"log/slog"
	"net/url"
	"os"

	"github.com/phivault/phivault/internal/detect"
	"github.com/phivault/phivault/internal/store"
)

// detectorJob returns the live detector on n's audit log, a cluster-wide
// job (leadJobs), and the alert store every node serves to officers under
// /fhir/_alerts: alerts are kept sealed in the store; with webhookURL each
// new or changed alert is also POSTed there, signed with
// PHIVAULT_WEBHOOK_SECRET when set, until ctx ends.
func (n *node) detectorJob(ctx context.Context, webhookURL string, log *slog.Logger) (alerts *detect.AlertStore, job leaderJob, err error) {
	if alerts, err = detect.NewAlertStore(ctx, n.db, n.barrier); err != nil {
		return nil, job, err
	}
	var route func(*detect.StoredAlert)
	if webhookURL != "" {
		u, err := url.Parse(webhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, job, fail(exitUsage, "--alert-webhook must be an http(s) URL", "e.g. --alert-webhook https://siem.example/phivault")
		}
		wh := &detect.Webhook{URL: webhookURL, Secret: []byte(os.Getenv("PHIVAULT_WEBHOOK_SECRET")), Log: log}
		wh.Start(ctx)
		route = wh.Send
	}
	return alerts, leaderJob{name: "live-detector", run: func(ctx context.Context, st store.Backend) {
		termAlerts, err := detect.NewAlertStore(ctx, st, n.barrier)
		if err != nil {
			log.Error("detect: cannot start the live detector", "err", err)
			return
		}
		detect.NewLive(detect.LiveConfig{
			Log: n.audit.Prover(), Alerts: termAlerts, Route: route, Logger: log,
			Directory: func(ctx context.Context) (*detect.Directory, error) { return detect.DirectoryFrom(ctx, n.records) },
		}).Run(ctx)
	}}, nil
}
