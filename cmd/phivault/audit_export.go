package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/audit"
)

// runAuditExport writes the audit log's events from --since on to stdout
// as JSON lines: each line is one leaf, byte for byte (an AuditEvent in
// compact JSON), so line i is leaf since+i and its hash is what the
// Merkle tree commits to. It opens the data directory itself; the export
// is recorded in the log (durably, before any event is written out) and
// the recorded event is not part of the output.
func runAuditExport(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("audit export", "--data DIR [--since INDEX] [--format jsonl]", stderr)
	since := fs.Int64("since", 0, "first leaf index to export")
	format := fs.String("format", "jsonl", "output format: jsonl")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "audit export"); err != nil {
		return err
	}
	if *format != "jsonl" {
		return fail(exitUsage, "unknown format "+strconv.Quote(*format), "use --format jsonl")
	}
	if *since < 0 {
		return fail(exitUsage, "--since must not be negative", "")
	}
	ctx := context.Background()
	n, err := openNode(ctx, *data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server holds the data directory", "export from a copy or a restored backup, or stop the server first; a running server serves leaves at /fhir/_audit/leaf")
	}
	if err != nil {
		return err
	}
	defer n.close()
	p := n.audit.Prover()
	size, err := p.Size(ctx)
	if err != nil {
		return err
	}
	if uint64(*since) > size {
		return fail(exitUsage, fmt.Sprintf("--since %d is beyond the log's %d leaves", *since, size), "")
	}
	ev := &audit.Event{Time: time.Now(), Interaction: "audit-export", Action: "E", Outcome: audit.Success, Allowed: true,
		UserID: fmt.Sprintf("operator:uid-%d", os.Getuid()), Roles: []string{"administrator"}, AuthMethod: "local-cli",
		Policies: []string{"local-operator"}, OutcomeDesc: fmt.Sprintf("leaves %d to %d", *since, size)}
	if err := n.audit.Record(ctx, ev); err != nil {
		return fail(exitFail, "the audit log is unavailable: nothing was exported", "check the data directory's disk")
	}
	w := bufio.NewWriterSize(stdout, 1<<16)
	err = p.ScanLeaves(ctx, uint64(*since), size, 0, func(_ uint64, leaf []byte) error {
		w.Write(leaf)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fail(exitFail, "export failed: "+err.Error(), "")
	}
	fmt.Fprintf(stderr, "exported %d events (leaves %d to %d)\n", size-uint64(*since), *since, size)
	return nil
}
