package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/phivault/phivault/internal/detect"
)

// runMonitor is privacy and threat monitoring in batch mode, over files
// or over the access logs imported into a data directory.
func runMonitor(args []string, stdout, stderr io.Writer) error {
	usage := "monitor import|run|alerts|eval [flags]"
	if len(args) == 0 {
		return fail(exitUsage, "which monitor command?", "phivault "+usage)
	}
	switch args[0] {
	case "import":
		return monitorImport(args[1:], stdout, stderr)
	case "run":
		return monitorRun(args[1:], stdout, stderr)
	case "alerts":
		return monitorAlerts(args[1:], stdout, stderr)
	case "eval":
		return monitorEval(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintf(stderr, "Usage: phivault %s\n\n  import  store an access log (CSV or FHIR AuditEvent NDJSON) sealed in a data directory\n  run     score an access log against a FHIR directory, or everything imported\n  alerts  print the alerts of a run\n  eval    compare a run with labelled incidents\n", usage)
		return nil
	}
	return fail(exitUsage, fmt.Sprintf("unknown monitor command %q", args[0]), "phivault "+usage)
}

func monitorFlags(name, line string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("monitor "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "monitor-out", "directory for the run's results")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phivault monitor %s %s\n\nFlags:\n", name, line)
		fs.PrintDefaults()
	}
	return fs, out
}

func monitorRun(args []string, stdout, stderr io.Writer) error {
	fs, out := monitorFlags("run", "--directory FILE --access FILE[,FILE...] --out DIR | --data DIR [--directory FILE] --out DIR", stderr)
	dirFile := fs.String("directory", "", "FHIR resources, NDJSON: Practitioner, PractitionerRole, Patient, Encounter, Appointment, CareTeam, ServiceRequest, MedicationRequest")
	access := fs.String("access", "", "access logs in the import CSV format, comma-separated")
	data := fs.String("data", "", "score the access logs imported into this data directory (monitor import), against its FHIR resources unless --directory is given")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var sum detect.Summary
	var err error
	switch {
	case *data != "" && *access != "":
		return fail(exitUsage, "--data and --access exclude each other", "import the file first: phivault monitor import --data "+*data+" FILE")
	case *data != "":
		if sum, err = monitorRunStored(*data, *dirFile, *out, stderr); err != nil {
			return err
		}
	case *dirFile == "" || *access == "":
		return fail(exitUsage, "--directory and --access (or --data) are required", "e.g. phivault monitor run --directory sim/directory.ndjson --access sim/access.csv --out sim/out")
	default:
		sum, err = detect.RunFiles(*dirFile, strings.Split(*access, ","), *out)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fail(exitFail, err.Error(), "check the file names")
		}
		return fail(exitFail, err.Error(), "the directory must be FHIR NDJSON and the access log must have the header "+strings.Join(detect.Columns, ","))
	}
	st := sum.Import
	fmt.Fprintf(stdout, "%d events (%d duplicate rows skipped, %d rejected, %d out of order, %d unknown users, %d rows with unknown patients)\n",
		sum.Events, st.Duplicates, st.ErrorCount, st.OutOfOrder, st.UnknownUsers, st.UnknownPatients)
	fmt.Fprintf(stdout, "%.1f%% of patient accesses explained (%.1f%% by a direct link); %d alerts in %d cases; %d explained break-glass uses for review\n",
		100*sum.Explained, 100*sum.ExplainedDirect, sum.Alerts, sum.Cases, sum.BreakGlassReview)
	fmt.Fprintf(stdout, "%.0f events/s; results in %s\n", sum.EventsPerSecond, *out)
	for _, e := range st.Errors {
		fmt.Fprintf(stderr, "rejected: %v\n", e)
	}
	if st.ErrorCount > len(st.Errors) {
		fmt.Fprintf(stderr, "... and %d more rejected rows\n", st.ErrorCount-len(st.Errors))
	}
	if st.ErrorCount > 0 {
		return fail(exitPartial, fmt.Sprintf("%d rows were rejected and skipped", st.ErrorCount), "fix the rows named above and run again; rows already read are not counted twice")
	}
	return nil
}

func monitorAlerts(args []string, stdout, stderr io.Writer) error {
	fs, out := monitorFlags("alerts", "[--out DIR] [--format json|text] [--min-score X]", stderr)
	format := fs.String("format", "text", "json (JSON lines) or text")
	minScore := fs.Float64("min-score", 0, "only alerts scoring at least this")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "json" && *format != "text" {
		return fail(exitUsage, "--format must be json or text", "")
	}
	alerts, err := detect.ReadAlerts(filepath.Join(*out, "alerts.jsonl"))
	if err != nil {
		return fail(exitFail, err.Error(), "run 'phivault monitor run --out "+*out+"' first")
	}
	enc := json.NewEncoder(stdout)
	for _, a := range alerts {
		if a.Score < *minScore {
			continue
		}
		if *format == "json" {
			if err := enc.Encode(a); err != nil {
				return err
			}
			continue
		}
		who := a.UserID
		if a.PatientID != "" {
			who += " -> " + a.PatientID
		}
		fmt.Fprintf(stdout, "%.2f %-6s %s %s [%s] %d events %s..%s\n", a.Score, a.Severity, a.CaseID, who, strings.Join(a.Rules, ","),
			a.Events, a.FirstSeen.Format("2006-01-02T15:04"), a.LastSeen.Format("15:04"))
		for _, r := range a.Reasons {
			fmt.Fprintf(stdout, "      - %s\n", r)
		}
	}
	return nil
}

func monitorEval(args []string, stdout, stderr io.Writer) error {
	fs, out := monitorFlags("eval", "--labels FILE [--out DIR] [--json]", stderr)
	labelsFile := fs.String("labels", "", "labelled incidents: user_id,patient_id,scenario,start,end")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *labelsFile == "" {
		return fail(exitUsage, "--labels is required", "e.g. phivault monitor eval --labels sim/labels.csv --out sim/out")
	}
	f, err := os.Open(*labelsFile)
	if err != nil {
		return fail(exitFail, err.Error(), "")
	}
	labels, err := detect.ReadLabels(f)
	f.Close()
	if err != nil {
		return fail(exitFail, err.Error(), "the header is user_id,patient_id,scenario,start,end with RFC 3339 times")
	}
	rep, err := detect.Eval(*out, labels)
	if err != nil {
		return fail(exitFail, err.Error(), "run 'phivault monitor run --out "+*out+"' first")
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintf(stdout, "incident recall        %.3f  (target >= 0.95)\n", rep.Recall)
	fmt.Fprintf(stdout, "precision              %.3f  (%d alerts)\n", rep.Precision, rep.Alerts)
	fmt.Fprintf(stdout, "precision@100          %.3f  (target >= 0.8)\n", rep.PrecisionAt100)
	fmt.Fprintf(stdout, "AUC (user-patient)     %.4f (target >= 0.95)\n", rep.AUC)
	fmt.Fprintf(stdout, "FP cases/1000 users/d  %.2f   (target <= 2; %d of %d cases)\n", rep.FPCasesPer1000UDay, rep.FPCases, rep.Cases)
	fmt.Fprintf(stdout, "legitimate explained   %.3f  (target >= 0.95)\n", rep.ExplainedLegit)
	names := make([]string, 0, len(rep.RecallByScenario))
	for s := range rep.RecallByScenario {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		fmt.Fprintf(stdout, "  recall %-22s %.2f\n", s, rep.RecallByScenario[s])
	}
	return nil
}
