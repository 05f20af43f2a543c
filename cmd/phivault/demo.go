package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/synth"
)

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("demo", "[--data DIR] [--patients N] [--listen HOST:PORT]", stderr)
	patients := fs.Int("patients", 100, "number of synthetic patients to create")
	seed := fs.Int64("seed", 1, "seed of the synthetic population (same seed, same patients)")
	listen := fs.String("listen", "localhost:8443", "address to listen on (HTTPS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir := *data
	if dir == "" {
		dir = "phivault-demo"
	}
	dir, _ = filepath.Abs(dir)
	firstPatient := ""
	if !isDataDir(dir) {
		fmt.Fprintf(stdout, "Creating demo data directory %s with %d synthetic patients (seed %d)...\n", dir, *patients, *seed)
		if _, err := initDir(dir, nil, stderr); err != nil {
			return err
		}
		var err error
		var gp string
		if firstPatient, gp, err = loadDemo(dir, synth.Options{Seed: *seed, Patients: *patients}, stderr); err != nil {
			return err
		}
		_ = os.WriteFile(filepath.Join(dir, "demo-patient"), []byte(firstPatient+"\n"), 0o600)
		if err := demoAccounts(dir, gp, stderr); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "Using the existing demo data directory %s\n", dir)
		b, _ := os.ReadFile(filepath.Join(dir, "demo-patient"))
		firstPatient = strings.TrimSpace(string(b))
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return err
	}
	tok, err := n.writeBootstrapToken(24 * time.Hour)
	n.close()
	if err != nil {
		return err
	}
	cert := filepath.Join(dir, tlsDirName, "cert.pem")
	o := serveOptions{data: dir, listen: *listen, logLevel: "warn"}
	o.ready = func(url string) {
		fmt.Fprintf(stdout, `
phivault demo is running.

  FHIR base URL:  %[1]s/fhir
  Bearer token:   %[2]s
                  (operator: the local operator path, allowed everything; valid 24 hours; also in %[3]s)
  TLS:            self-signed development certificate %[4]s
  Console:        %[1]s/login  (accounts and passwords in %[6]s;
                  the physician enrols a second factor at first sign-in)

Try:
  curl --cacert %[4]s -H "Authorization: Bearer $(cat %[3]s)" %[1]s/fhir/metadata
  curl --cacert %[4]s -H "Authorization: Bearer $(cat %[3]s)" %[1]s/fhir/Patient/%[5]s
  curl --cacert %[4]s -H "Authorization: Bearer $(cat %[3]s)" "%[1]s/fhir/Patient/%[5]s/_history?_count=5"

Every request is authenticated, decided by policy and written to the audit log before it is answered.
Press Ctrl-C to stop.
`, url, tok, filepath.Join(dir, bootstrapName), cert, firstPatient, filepath.Join(dir, demoAccountsName))
	}
	tuneGC()
	return serve(o, stderr)
}

// loadDemo imports the synthetic population into dir through the normal
// import path and returns the id of the first patient and the reference
// of that patient's general practitioner.
func loadDemo(dir string, opt synth.Options, stderr io.Writer) (first, gp string, err error) {
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), stderr)
	if err != nil {
		return "", "", err
	}
	defer n.close()
	p := policy.Principal{UserID: "operator:demo", Roles: []string{authn.OperatorRole}, Method: "local-cli"}
	im := &importer{client: server.InProcess(n.api("http://phivault/fhir").Handler(), p), stderr: stderr}
	for b := range synth.Bundles(opt) {
		idempotent(b)
		if first == "" {
			first, gp = patientID(b), generalPractitioner(b)
		}
		if _, err := im.post(b); err != nil {
			return "", "", fmt.Errorf("loading the demo population: %w", err)
		}
	}
	return first, gp, nil
}

// patientID returns the id of the first Patient in a bundle, or "".
func patientID(b map[string]any) string {
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		ent, _ := e.(map[string]any)
		res, _ := ent["resource"].(map[string]any)
		if res["resourceType"] == "Patient" {
			id, _ := res["id"].(string)
			return id
		}
	}
	return ""
}
