package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/detect"
)

// monitorImport is 'phivault monitor import': it reads a whole access log
// (CSV in the import format, or FHIR AuditEvents as NDJSON), reports bad
// rows by line number, and stores the good rows sealed in the store with
// the import record and its audit record in one transaction. It works on
// a data directory no server holds: with a server running it refuses (the
// import is an offline bulk load; see docs/monitoring.md).
func monitorImport(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("monitor import", "--data DIR [--format csv|auditevent-ndjson] FILE", stderr)
	format := fs.String("format", detect.FormatCSV, "csv (the import format) or auditevent-ndjson (FHIR AuditEvent, one per line)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := needData(*data, "monitor import"); err != nil {
		return err
	}
	if len(pos) != 1 {
		return fail(exitUsage, "give exactly one access log to import", "phivault monitor import --data DIR --format csv access.csv")
	}
	if *format != detect.FormatCSV && *format != detect.FormatAuditEvent {
		return fail(exitUsage, fmt.Sprintf("unknown --format %q", *format), "use csv or auditevent-ndjson")
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return fail(exitFail, err.Error(), "check the file name")
	}
	rows, ps, err := detect.ParseImport(bytes.NewReader(raw), *format)
	if err != nil {
		return fail(exitFail, err.Error(), "the CSV header is "+strings.Join(detect.Columns, ","))
	}
	n, err := openNode(context.Background(), *data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server holds "+*data+"; monitor import loads the store offline",
			"stop the server, run the import, and start it again (nothing was imported)")
	}
	if err != nil {
		return err
	}
	defer n.close()
	ctx := context.Background()
	dir, err := detect.DirectoryFrom(ctx, n.records)
	if err != nil {
		return err
	}
	var unkUserRows, unkPatRows int
	unkUsers := map[string]bool{}
	for i := range rows {
		if !dir.KnowsUser(rows[i].UserID) {
			unkUserRows++
			unkUsers[rows[i].UserID] = true
		}
		if rows[i].PatientID != "" && !dir.KnowsPatient(rows[i].PatientID) {
			unkPatRows++
		}
	}
	imp, err := detect.NewImports(ctx, n.db, n.barrier)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	by := fmt.Sprintf("operator:uid-%d", os.Getuid())
	rec := &detect.ImportRecord{Time: time.Now().UTC(), By: by, Format: *format, FileSHA256: hex.EncodeToString(sum[:]),
		FileSize: int64(len(raw)), Parse: ps}
	err = imp.Add(ctx, rows, rec, func(r *detect.ImportRecord) []byte {
		ev := &audit.Event{Time: r.Time, Interaction: "monitor-import", Action: "C", Outcome: audit.Success,
			OutcomeDesc: fmt.Sprintf("access log sha256 %s, %d bytes, %s: %d rows, %d rejected, %d new, %d already imported",
				r.FileSHA256, r.FileSize, r.Format, r.Parse.Rows, r.Parse.Rejected, r.New, r.Already),
			UserID: by, Roles: []string{"administrator"}, Allowed: true, Policies: []string{"operator-path"}}
		return ev.Leaf()
	})
	if err != nil {
		return fmt.Errorf("storing the import (nothing was imported): %w", err)
	}
	for _, e := range ps.Errors {
		fmt.Fprintf(stderr, "rejected: %v\n", e)
	}
	if ps.Rejected > len(ps.Errors) {
		fmt.Fprintf(stderr, "... and %d more rejected rows\n", ps.Rejected-len(ps.Errors))
	}
	fmt.Fprintf(stdout, "%d rows read: %d rejected, %d duplicate rows in the file, %d out of order, %d rows by %d users not in the directory, %d rows with patients not in the store\n",
		ps.Rows, ps.Rejected, ps.Duplicates, ps.OutOfOrder, unkUserRows, len(unkUsers), unkPatRows)
	fmt.Fprintf(stdout, "%d new, %d already imported\n", rec.New, rec.Already)
	if ps.Rejected > 0 {
		return fail(exitPartial, fmt.Sprintf("%d rows were rejected and skipped; the other rows were imported", ps.Rejected),
			"fix the rows named above and import the file again: rows already imported are stored once")
	}
	return nil
}

// monitorRunStored is 'phivault monitor run --data DIR': it scores every
// row imported into the store, against the directory the store's FHIR
// resources make (or --directory FILE), and writes the results to out.
func monitorRunStored(data, dirFile, out string, stderr io.Writer) (detect.Summary, error) {
	var sum detect.Summary
	n, err := openNode(context.Background(), data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return sum, fail(exitFail, "a server holds "+data+"; monitor run --data reads the store offline",
			"stop the server first, or run it on a restored backup of the directory")
	}
	if err != nil {
		return sum, err
	}
	defer n.close()
	ctx := context.Background()
	var dir *detect.Directory
	if dirFile != "" {
		f, err := os.Open(dirFile)
		if err != nil {
			return sum, fail(exitFail, err.Error(), "check the file name")
		}
		dir, err = detect.LoadDirectory(f)
		f.Close()
		if err != nil {
			return sum, fail(exitFail, err.Error(), "the directory must be FHIR NDJSON")
		}
	} else if dir, err = detect.DirectoryFrom(ctx, n.records); err != nil {
		return sum, err
	}
	imp, err := detect.NewImports(ctx, n.db, n.barrier)
	if err != nil {
		return sum, err
	}
	rows, err := imp.Rows(ctx)
	if err != nil {
		return sum, err
	}
	if len(rows) == 0 {
		return sum, fail(exitFail, "no access log was imported into "+data, "import one with 'phivault monitor import --data "+data+" FILE'")
	}
	return detect.RunRows(dir, rows, out)
}
