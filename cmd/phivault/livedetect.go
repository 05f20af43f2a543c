package main

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"sync"

	"github.com/phivault/phivault/internal/detect"
)

// startDetector runs the live detector on n's audit log until ctx ends:
// alerts are kept sealed in the store and served to officers under
// /fhir/_alerts; with webhookURL each new or changed alert is also
// POSTed there, signed with PHIVAULT_WEBHOOK_SECRET when set. stop ends
// the detector and waits for it (call it before closing the store).
func (n *node) startDetector(ctx context.Context, webhookURL string, log *slog.Logger) (alerts *detect.AlertStore, stop func(), err error) {
	if alerts, err = detect.NewAlertStore(ctx, n.db, n.barrier); err != nil {
		return nil, nil, err
	}
	var route func(*detect.StoredAlert)
	if webhookURL != "" {
		u, err := url.Parse(webhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, nil, fail(exitUsage, "--alert-webhook must be an http(s) URL", "e.g. --alert-webhook https://siem.example/phivault")
		}
		wh := &detect.Webhook{URL: webhookURL, Secret: []byte(os.Getenv("PHIVAULT_WEBHOOK_SECRET")), Log: log}
		wh.Start(ctx)
		route = wh.Send
	}
	live := detect.NewLive(detect.LiveConfig{
		Log: n.audit.Prover(), Alerts: alerts, Route: route, Logger: log,
		Directory: func(ctx context.Context) (*detect.Directory, error) { return detect.DirectoryFrom(ctx, n.records) },
	})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { live.Run(ctx) })
	return alerts, func() { cancel(); wg.Wait() }, nil
}
