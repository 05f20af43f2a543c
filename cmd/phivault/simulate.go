package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/phivault/phivault/internal/simulate"
)

func runSimulate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "random seed (same seed, same hospital)")
	users := fs.Int("users", 300, "staff accounts")
	patients := fs.Int("patients", 5000, "patients")
	days := fs.Int("days", 14, "days of access log")
	rate := fs.Float64("incident-rate", 0.25, "incidents of each scenario per 1,000 user-days")
	out := fs.String("out", "", "output directory (directory.ndjson, access.csv, labels.csv)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phivault simulate --seed N --users U --patients P --days D --out DIR\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fail(exitUsage, "--out is required", "e.g. phivault simulate --seed 1 --out sim1")
	}
	cfg := simulate.Config{Seed: *seed, Users: *users, Patients: *patients, Days: *days, IncidentRate: *rate}
	if err := cfg.Validate(); err != nil {
		return fail(exitUsage, err.Error(), "run 'phivault simulate -h' for the flags")
	}
	st, err := simulate.Run(cfg, *out)
	if err != nil {
		return fail(exitFail, err.Error(), "check that --out is writable")
	}
	fmt.Fprintf(stdout, "wrote %s: %d access events, %d labelled incidents\n", *out, st.Events, st.Labels)
	return nil
}
