// Command phivault is the phivault server and its operator CLI.
//
// Exit codes: 0 success; 1 the command failed; 2 usage error (bad flags or
// arguments); 3 import finished but some inputs failed; 4 the data
// directory is sealed or its key cannot be opened.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes (documented in the package comment and the README).
const (
	exitOK      = 0
	exitFail    = 1
	exitUsage   = 2
	exitPartial = 3
	exitKeys    = 4
)

// cliError is a failure told to the user in one line, with a hint.
type cliError struct {
	msg, hint string
	code      int
}

func (e *cliError) Error() string { return e.msg }

func fail(code int, msg, hint string) error { return &cliError{msg: msg, hint: hint, code: code} }

type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"init":     {"create a data directory and its keys", runInit},
	"audit":    {"verify the audit log, sign a checkpoint now, export events, or archive old segments with their proofs", runAudit},
	"serve":    {"run the server on a data directory", runServe},
	"demo":     {"create a demo data directory with a synthetic population and serve it", runDemo},
	"import":   {"import FHIR bundles and NDJSON files", runImport},
	"token":    {"mint a short-lived bearer token (operator path)", runToken},
	"client":   {"register, list or remove SMART apps and backend clients", runClient},
	"check":    {"verify every stored version decrypts and matches (offline)", runCheck},
	"version":  {"print the version", runVersion},
	"keys":     {"split the key into shares, rotate, retire or show KEK versions", runKeys},
	"patient":  {"erase a patient (crypto-shredding) or place/release a legal hold", runPatient},
	"unseal":   {"give one share to a sealed server", runUnseal},
	"seal":     {"seal the running server: wipe its keys from memory", runSeal},
	"simulate": {"write a simulated hospital access log for monitoring tests", runSimulate},
	"monitor":  {"privacy and threat monitoring over access logs: import, run, alerts, eval", runMonitor},
	"backup":   {"encrypted, deduplicated backups: create, verify or prune", runBackup},
	"restore":  {"restore a backup into a new data directory and verify it; restore drill: a timed test restore with smoke queries", runRestore},
	"policy":   {"show, check or replace the Cedar access policy set", runPolicy},
	"migrate":  {"apply PostgreSQL schema migrations, or move an embedded store to PostgreSQL", runMigrate},
	"reindex":  {"rebuild the search index online (after adding custom SearchParameters)", runReindex},

	"user":          {"manage accounts: add, list, show, disable, enable, unlock, roles, password, revoke", runUser},
	"training":      {"record a user's completed training (HIPAA training gates patient data)", runTraining},
	"access-review": {"report every user's access, or keep and revoke roles (recertification)", runAccessReview},
}

func main() {
	// For performance work: PHIVAULT_CPUPROFILE=FILE writes a CPU profile
	// (go tool pprof), PHIVAULT_MEMPROFILE=FILE the allocations made (go
	// tool pprof -sample_index=alloc_space) and PHIVAULT_TRACE=FILE an
	// execution trace (go tool trace: where each goroutine, such as the
	// store's writer, waits) of the whole command.
	stop := startProfiles(os.Stderr)
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// startProfiles starts the profiles and trace that PHIVAULT_CPUPROFILE,
// PHIVAULT_MEMPROFILE and PHIVAULT_TRACE ask for, each written to its
// file, and returns what stops them. One that cannot start is reported on
// stderr and skipped.
func startProfiles(stderr io.Writer) (stop func()) {
	stop = func() {}
	start := func(env string, begin func(io.Writer) error, end func()) {
		p := os.Getenv(env)
		if p == "" {
			return
		}
		f, err := os.Create(p)
		if err == nil {
			if err = begin(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "phivault: %s not written: %v\n", env, err)
			return
		}
		prev := stop
		stop = func() { end(); f.Close(); prev() }
	}
	start("PHIVAULT_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	start("PHIVAULT_TRACE", trace.Start, trace.Stop)
	var mem io.Writer
	start("PHIVAULT_MEMPROFILE", func(w io.Writer) error { mem = w; return nil }, func() {
		if err := pprof.Lookup("allocs").WriteTo(mem, 0); err != nil {
			fmt.Fprintf(stderr, "phivault: PHIVAULT_MEMPROFILE not written: %v\n", err)
		}
	})
	return stop
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "phivault: unknown command %q\nhint: run 'phivault help' for the list of commands\n", args[0])
		return exitUsage
	}
	err := cmd.run(args[1:], stdout, stderr)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ce *cliError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "phivault %s: %s\n", args[0], ce.msg)
		if ce.hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", ce.hint)
		}
		return ce.code
	}
	fmt.Fprintf(stderr, "phivault %s: %v\n", args[0], err)
	return exitFail
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `phivault %s - a patient-data platform with encryption, access control and audit built in

Usage: phivault <command> [flags]

Commands:
`, version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Every command takes --data DIR (or PHIVAULT_DATA). Run 'phivault <command> -h' for its flags.

Start here:  phivault demo          (a demo server with synthetic patients)
Then:        phivault init --data /var/lib/phivault && phivault serve --data /var/lib/phivault

Exit codes: 0 ok, 1 failed, 2 usage error, 3 import partly failed, 4 keys unavailable.
`)
}

// newFlags returns a flag set for a command with the common --data flag.
func newFlags(name, usageLine string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", os.Getenv("PHIVAULT_DATA"), "data directory (env PHIVAULT_DATA)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phivault %s %s\n\nFlags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs, data
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fail(exitUsage, strings.TrimSpace(err.Error()), "run 'phivault "+fs.Name()+" -h' for the flags")
	}
	return nil
}

func needData(dir string, cmd string) error {
	if dir == "" {
		return fail(exitUsage, "no data directory given", "pass --data DIR or set PHIVAULT_DATA")
	}
	return nil
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "phivault %s\n", version)
	return nil
}
