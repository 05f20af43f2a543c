package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
)

// verifyTarget checks the copied store on PostgreSQL before anything
// points at it: every table holds as many rows as the source snapshot,
// the audit log verifies under the directory's checkpoint key with the
// source's size and root, and every version opens through the barrier
// with the directory's key (records.Check). It returns the first failure.
func verifyTarget(ctx context.Context, src *node, dsn string, pool *pgxpool.Pool, want map[string]int64,
	verifier note.Verifier, srcAudit *audit.Report, stdout io.Writer) error {
	for _, t := range storeTables {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %v", t, pgErrLine(err))
		}
		if n != want[t] {
			return fmt.Errorf("table %s holds %d rows, the source %d", t, n, want[t])
		}
	}
	var head int64
	if err := pool.QueryRow(ctx, `SELECT size FROM audit_head`).Scan(&head); err != nil || head != want["audit"] {
		return fmt.Errorf("audit_head is %d (%v), the log has %d leaves", head, err, want["audit"])
	}
	fmt.Fprintln(stdout, "verified: row counts of every table equal the source's")

	db, err := postgres.Open(ctx, dsn, postgres.WithoutMigrate(), postgres.WithReaders(2))
	if err != nil {
		return fmt.Errorf("open the target as a store: %v", err)
	}
	defer db.Close()
	var rep *audit.Report
	err = db.View(ctx, func(r store.Reader) (err error) {
		rep, err = audit.Verify(ctx, r, verifier)
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("audit verify on the target: %v", err)
	case !rep.OK():
		return fmt.Errorf("the target's audit log fails verification: %v", rep.Err())
	case rep.Leaves != srcAudit.Leaves || !bytes.Equal(rep.Root, srcAudit.Root) || rep.Checkpoints != srcAudit.Checkpoints:
		return fmt.Errorf("the target's audit tree (size %d, root %x, %d checkpoints) differs from the source's (size %d, root %x, %d checkpoints)",
			rep.Leaves, rep.Root, rep.Checkpoints, srcAudit.Leaves, srcAudit.Root, srcAudit.Checkpoints)
	}
	fmt.Fprintf(stdout, "verified: audit log of %d leaves, root %x, %d signed checkpoints, as in the source\n", rep.Leaves, rep.Root, rep.Checkpoints)

	// The target opened with the directory's key exactly as a node would.
	tn := &node{dir: src.dir, db: db, log: slog.New(slog.DiscardHandler)}
	tn.audit = audit.NewLog(db, 5*time.Second)
	if err := tn.open(ctx, src.kek); err != nil {
		return fmt.Errorf("open the target with the directory's key: %v", err)
	}
	crep, err := tn.records.Check(ctx, 5, nil)
	switch {
	case err != nil:
		return fmt.Errorf("decrypt-all check on the target: %v", err)
	case !crep.OK():
		return fmt.Errorf("decrypt-all check on the target: %d problems, first %s", crep.ProblemCount, crep.Problems[0])
	case crep.Versions != want["versions"]:
		return fmt.Errorf("decrypt-all check read %d versions, the source has %d", crep.Versions, want["versions"])
	}
	fmt.Fprintf(stdout, "verified: %d versions of %d resources decrypt and authenticate with the directory's key (%d delete markers, %d erased by crypto-shredding)\n",
		crep.Versions, crep.Resources, crep.Deleted, crep.Erased)
	return nil
}
