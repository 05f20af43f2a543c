package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/store"
)

// repoArchiveDir is where --repo puts segments in a backup repository,
// beside the snapshots: audit-archive/<from>-<to>.age, sealed with age to
// the repository's recipients.
const repoArchiveDir = "audit-archive"

// runAuditArchive writes the next archive segment of the audit log: the
// leaves from the end of the last archived segment up to --before or
// --upto, with the compact ranges and the signed checkpoint that prove
// them (docs/audit.md, "Retention and archiving"). It copies: the live log
// keeps every leaf. The segment is recorded in the store's metadata and
// the action in the log (one transaction) before any copy is released.
func runAuditArchive(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("audit archive", "--data DIR (--before DATE | --upto INDEX) --out FILE|- [--repo PATH|s3://BUCKET/PREFIX] [--retention 6y]", stderr)
	before := fs.String("before", "", "archive the leaves before the first one recorded at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC)")
	upto := fs.Uint64("upto", 0, "archive the leaves before this index")
	out := fs.String("out", "", "the segment file to create (never replaced), or - for stdout")
	repo := fs.String("repo", "", "also put the segment, sealed to the repository's recipients, into this backup repository (one this node backs up to)")
	s3 := addS3Flags(fs, true)
	retention := fs.String("retention", "6y", "how long the live log must keep a leaf after it was recorded (at least 6y, 45 CFR 164.316); written into the segment as keepUntil")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "audit archive"); err != nil {
		return err
	}
	hint := "phivault audit archive --data DIR --before 2020-01-01 --out segment.jsonl"
	if fs.NArg() > 0 {
		return fail(exitUsage, "unexpected argument "+strconv.Quote(fs.Arg(0)), hint)
	}
	uptoSet := false
	fs.Visit(func(f *flag.Flag) { uptoSet = uptoSet || f.Name == "upto" })
	opt := audit.SegmentOptions{Now: time.Now()}
	switch {
	case (*before == "") == !uptoSet:
		return fail(exitUsage, "give exactly one of --before DATE and --upto INDEX", hint)
	case *before != "":
		t, err := parseArchiveDate(*before)
		if err != nil {
			return fail(exitUsage, "--before: "+err.Error(), "a time such as 2020-01-01 or 2020-01-01T08:00:00Z")
		}
		opt.Before = t
	case *upto == 0:
		return fail(exitUsage, "--upto 0 archives nothing", "--upto takes the first leaf index not to archive")
	default:
		opt.UpTo = *upto
	}
	if *out == "" {
		return fail(exitUsage, "no --out given", "--out FILE (created, never replaced) or --out - for stdout")
	}
	if *out != "-" {
		if _, err := os.Lstat(*out); err == nil {
			return fail(exitUsage, *out+" exists; segments are written once", "choose a new file name")
		}
	}
	var err error
	if opt.Retention, err = parseRetention(*retention); err != nil {
		return fail(exitUsage, "--retention: "+err.Error(), "a period such as 6y (the minimum) or 2555d")
	}
	ctx := context.Background()
	var rst backup.Storage
	var recips []age.Recipient
	if *repo != "" {
		if rst, recips, err = archiveRepo(ctx, *data, *repo, s3); err != nil {
			return err
		}
	}

	n, err := openNode(ctx, *data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server holds the data directory", "archiving opens the data directory itself: stop the server, archive, and start it again")
	}
	if err != nil {
		return err
	}
	defer n.close()
	signer, vkey, err := n.auditSigner(ctx)
	if err != nil {
		return err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	cp, err := audit.NewCheckpointer(n.db, audit.NewIntegrator(n.db), signer, audit.CheckpointerOptions{}).Checkpoint(ctx)
	if err != nil {
		return fail(exitFail, "cannot sign a checkpoint: "+err.Error(), "run phivault audit verify")
	}
	if cp == nil {
		fmt.Fprintln(stderr, "nothing to archive: the audit log is empty")
		return nil
	}
	if err := n.db.View(ctx, func(r store.Reader) (err error) {
		opt.From, err = audit.ArchivedUpTo(r)
		return err
	}); err != nil {
		return err
	}
	p := n.audit.Prover()
	seg, err := audit.PlanSegment(ctx, p, cp, verifier, opt)
	switch {
	case errors.Is(err, audit.ErrNothingToArchive):
		fmt.Fprintf(stderr, "nothing to archive, no segment written: %s\n", strings.TrimPrefix(err.Error(), "audit: nothing to archive: "))
		return nil
	case errors.Is(err, audit.ErrTooLarge):
		return fail(exitUsage, fmt.Sprintf("--upto %d is beyond the log", *upto), "see the log's size with phivault audit checkpoint")
	case errors.Is(err, audit.ErrTampered):
		return fail(exitFail, err.Error(), "nothing was archived; keep this data directory as evidence")
	case err != nil:
		return fail(exitFail, "cannot read the segment: "+err.Error(), "nothing was archived")
	}
	h := seg.Header

	// Write the copy first (unreleased), record it with its audit event,
	// then release it: a segment is never out without its event.
	var (
		tmp     *os.File
		keepTmp bool // the segment was recorded but not put in place
		sum     [32]byte
	)
	if *out == "-" {
		sum, _, err = seg.WriteTo(ctx, p, io.Discard)
	} else {
		if tmp, err = os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-*"); err != nil {
			return fail(exitFail, "cannot create the segment file: "+err.Error(), "")
		}
		defer func() {
			if !keepTmp {
				os.Remove(tmp.Name())
			}
		}()
		sum, _, err = seg.WriteTo(ctx, p, tmp)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fail(exitFail, "cannot write the segment: "+err.Error(), "nothing was archived")
	}
	var sealed []byte
	if rst != nil {
		if sealed, err = sealSegment(ctx, seg, p, recips); err != nil {
			return fail(exitFail, "cannot seal the segment for the repository: "+err.Error(), "nothing was archived")
		}
	}
	where := *out
	if where == "-" {
		where = "stdout"
	}
	rec := audit.ArchiveRecord{From: h.From, To: h.To, TreeSize: h.TreeSize, SHA256: fmt.Sprintf("%x", sum),
		Archived: opt.Now.UTC(), KeepUntil: h.KeepUntil, Where: where}
	ev := &audit.Event{Time: opt.Now, Interaction: "audit-archive", Action: "E", Outcome: audit.Success, Allowed: true,
		UserID: fmt.Sprintf("operator:uid-%d", os.Getuid()), Roles: []string{"administrator"}, AuthMethod: "local-cli",
		Policies:    []string{"local-operator"},
		OutcomeDesc: fmt.Sprintf("archived leaves %d to %d against checkpoint %d, sha256 %x; the live log keeps them", h.From, h.To, h.TreeSize, sum)}
	if err := audit.RecordArchive(ctx, n.db, rec, ev); err != nil {
		if errors.Is(err, audit.ErrArchiveRace) {
			return fail(exitFail, err.Error(), "run the archive again")
		}
		return fail(exitFail, "the archive could not be recorded (nothing was released): "+err.Error(), "check the data directory's disk")
	}
	if *out == "-" {
		again, _, err := seg.WriteTo(ctx, p, stdout)
		if err == nil && again != sum {
			err = errors.New("the segment changed between its record and its output")
		}
		if err != nil {
			return fail(exitFail, "the segment was recorded but its output failed: "+err.Error(), "the live log keeps every leaf; archive again from the segment's first leaf with a new data directory copy")
		}
	} else if err := releaseSegment(tmp.Name(), *out); err != nil {
		keepTmp = true
		return fail(exitFail, "the segment was recorded (sha256 "+rec.SHA256+") but could not be put in place: "+err.Error(), "it is in "+tmp.Name()+"; rename it")
	}
	if rst != nil {
		name := fmt.Sprintf("%s/%020d-%020d.age", repoArchiveDir, h.From, h.To)
		if err := rst.Create(ctx, name, sealed); err != nil {
			return fail(exitFail, "the segment was archived to "+where+" but not to the repository: "+err.Error(), "copy it into the repository by hand, or keep the file")
		}
		fmt.Fprintf(stderr, "repository: %s/%s (age, to its %d recipients)\n", rst, name, len(recips))
	}
	fmt.Fprintf(stderr, "archived leaves %d to %d (%d events, recorded %s to %s) against the signed checkpoint of %d leaves\nsegment: %s (sha256 %x)\n",
		h.From, h.To, h.To-h.From, h.Oldest.Format(time.RFC3339), h.Newest.Format(time.RFC3339), h.TreeSize, where, sum)
	fmt.Fprintf(stderr, "the live log keeps every leaf; with the retention of %s these must stay in it at least until %s\n", *retention, h.KeepUntil.Format("2006-01-02"))
	return nil
}

// releaseSegment puts the written temporary file at its name, never
// replacing a file, and syncs the directory.
func releaseSegment(tmp, out string) error {
	if err := os.Link(tmp, out); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(out))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// archiveRepo opens the backup repository named by repo, with this
// node's write key (which names its recipients).
func archiveRepo(ctx context.Context, data, repo string, s3 *s3Flags) (backup.Storage, []age.Recipient, error) {
	st, err := s3.storage(ctx, repo, true)
	if err != nil {
		return nil, nil, err
	}
	k, _ := findWriteKey(data, st)
	if k == nil {
		return nil, nil, fail(exitFail, "this node holds no write key for the repository "+repo, "back up to it first with phivault backup create")
	}
	var rs []age.Recipient
	for _, s := range k.Recips {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, nil, fail(exitFail, "the repository's recipient "+s+" is not valid: "+err.Error(), "")
		}
		rs = append(rs, r)
	}
	return st, rs, nil
}

// sealSegment returns the segment encrypted with age to recips.
func sealSegment(ctx context.Context, seg *audit.Segment, p *audit.Prover, recips []age.Recipient) ([]byte, error) {
	var b bytes.Buffer
	w, err := age.Encrypt(&b, recips...)
	if err != nil {
		return nil, err
	}
	if _, _, err := seg.WriteTo(ctx, p, w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// parseArchiveDate reads RFC 3339 or a bare date (midnight UTC).
func parseArchiveDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date", s)
}

// parseRetention reads a period in years ("6y") or days ("2555d"); less
// than six years is refused.
func parseRetention(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("%q is not a period", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a period", s)
	}
	var d time.Duration
	switch s[len(s)-1] {
	case 'y':
		d = time.Duration(n) * 365 * 24 * time.Hour
	case 'd':
		d = time.Duration(n) * 24 * time.Hour
	default:
		return 0, fmt.Errorf("%q is not a period", s)
	}
	if d < audit.DefaultRetention {
		return 0, fmt.Errorf("%s is less than six years, the minimum HIPAA sets for audit records", s)
	}
	return d, nil
}

// runAuditVerifyArchive checks a segment offline with the public key
// alone (audit.VerifyArchive). Exit codes as audit verify: 0 it verifies,
// 1 it does not, 2 usage.
func runAuditVerifyArchive(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify-archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyArg := fs.String("key", "", "the log's public key: the file audit-verifier.key from the data directory, or the key itself")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phivault audit verify-archive FILE|- --key PUBLIC_KEY\n\nFlags:\n")
		fs.PrintDefaults()
	}
	hint := "phivault audit verify-archive segment.jsonl --key audit-verifier.key"
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 { // flags may follow the file
		if err := parseFlags(fs, rest[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fail(exitUsage, "one segment file at a time", hint)
		}
	}
	if len(rest) == 0 {
		return fail(exitUsage, "no segment file given", hint)
	}
	if *keyArg == "" {
		return fail(exitUsage, "no --key given: the segment is checked with the log's public key alone", hint)
	}
	vkey := *keyArg
	if b, err := os.ReadFile(vkey); err == nil {
		vkey = strings.TrimSpace(string(b))
	} else if !strings.Contains(vkey, "+") {
		return fail(exitUsage, "cannot read the key file: "+err.Error(), "--key takes the file "+auditVKeyFile+" or the key line itself")
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fail(exitUsage, "the public key is not valid", "it is a single line such as "+auditOriginBase+"...+hash+key")
	}
	var in io.Reader = os.Stdin
	if rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			return fail(exitUsage, "cannot open the segment: "+err.Error(), hint)
		}
		defer f.Close()
		in = f
	}
	rep, err := audit.VerifyArchive(in, verifier)
	if err != nil {
		return fail(exitFail, "cannot read the segment: "+err.Error(), "")
	}
	h := rep.Header
	fmt.Fprintf(stdout, "segment: leaves %d to %d of the log %s, checkpoint of %d leaves\nleaves read: %d\nrecorded: %s to %s\nkeep in the live log until: %s\n",
		h.From, h.To, h.Origin, h.TreeSize, rep.Leaves, h.Oldest.Format(time.RFC3339), h.Newest.Format(time.RFC3339), h.KeepUntil.Format("2006-01-02"))
	if !rep.OK() {
		for i, p := range rep.Problems {
			if i == 20 {
				fmt.Fprintf(stdout, "... and %d more\n", len(rep.Problems)-20)
				break
			}
			fmt.Fprintf(stdout, "PROBLEM %s\n", p)
		}
		return fail(exitFail, "the segment does not verify: first bad entry: "+rep.Problems[0].String(), "keep the file as evidence; archive the segment again from the live log or a verified backup")
	}
	fmt.Fprintf(stdout, "OK: the segment verifies: leaves %d to %d are the ones the signed checkpoint of %d leaves commits to\n", h.From, h.To, h.TreeSize)
	return nil
}
