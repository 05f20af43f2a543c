package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
)

// runCheck is the offline integrity check: it opens the data directory
// (so no server may hold it) and decrypts and authenticates every stored
// version of every resource (records.Store.Check).
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("check", "--data DIR [--max-problems N]", stderr)
	maxProblems := fs.Int("max-problems", 20, "how many problems to list (all are counted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "check"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, "check takes no arguments", "phivault check --data DIR")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	n, err := openNode(ctx, *data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a running server holds "+*data+"; the check reads the directory offline",
			"stop the server (SIGTERM), run 'phivault check --data "+*data+"', then start it again")
	}
	if err != nil {
		return err
	}
	defer n.close()
	rep, err := n.records.Check(ctx, max(*maxProblems, 0), nil)
	if err != nil {
		return fail(exitFail, "the check could not finish: "+err.Error(), "is the store readable? see the error above")
	}
	fmt.Fprintf(stdout, "checked %d versions of %d resources (%d delete markers, %d erased by crypto-shredding)\n", rep.Versions, rep.Resources, rep.Deleted, rep.Erased)
	if rep.OK() {
		fmt.Fprintln(stdout, "ok: every version decrypts, authenticates and matches where it is stored")
		return nil
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "problem:", p)
	}
	if more := rep.ProblemCount - int64(len(rep.Problems)); more > 0 {
		fmt.Fprintf(stdout, "... and %d more problems\n", more)
	}
	return fail(exitFail, fmt.Sprintf("integrity check failed: %d problems", rep.ProblemCount),
		"restore the damaged versions from a backup; the problems above name them")
}
