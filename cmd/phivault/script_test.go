package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/phivault/phivault/internal/store"
)

// TestMain lets testscript run the phivault command inside the test binary
// (the same run function main calls), and removes shared fixtures after
// the tests.
func TestMain(m *testing.M) {
	testscript.Main(withCleanup{m}, map[string]func(){
		"phivault": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

type withCleanup struct{ m *testing.M }

func (w withCleanup) Run() int {
	code := w.m.Run()
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for _, f := range cleanups {
		f()
	}
	return code
}

// TestScripts runs the CLI scenarios in testdata/script: what an operator
// types and what the command must answer (output, hints, exit codes, file
// modes), so that operators' scripts keep working.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    cmdExits,
			"perm":     cmdPerm,
			"waitfile": cmdWaitFile,
			"count":    cmdCount,
		},
	})
}

// exits CODE CMD ARGS... runs a command and requires exactly that exit
// code (operators' scripts branch on it).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// perm MODE FILE checks a file's permission bits (e.g. perm 0600 key).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm MODE FILE")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("perm: bad mode %q", args[0])
	}
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := fi.Mode().Perm(); (got == os.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %#o; want %s%#o", args[1], got, map[bool]string{true: "not "}[neg], want)
	}
}

// waitfile FILE waits up to 30s for FILE to exist (a server's socket).
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
	}
	ts.Fatalf("%s did not appear within 30s", args[0])
}

// count DIR TYPE N opens the (development-key) data directory offline and
// requires exactly N current resources of TYPE.
func cmdCount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: count DIR TYPE N")
	}
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	n, err := openNode(context.Background(), ts.MkAbs(args[0]), slog.New(slog.DiscardHandler), io.Discard)
	ts.Check(err)
	defer n.close()
	got, err := n.records.Count(context.Background(), store.MatchQuery{Type: args[1]})
	ts.Check(err)
	if got != want {
		ts.Fatalf("%s holds %d %s resources, want %d", args[0], got, args[1], want)
	}
}
