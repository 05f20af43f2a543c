package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
)

// archiveLeaves reads a segment file's header and leaves.
func archiveLeaves(t *testing.T, file string) (audit.ArchiveHeader, [][]byte) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	var h audit.ArchiveHeader
	if err := json.Unmarshal(lines[0], &h); err != nil {
		t.Fatal(err)
	}
	n := int(h.To - h.From)
	if len(lines) != 1+2*n {
		t.Fatalf("%s: %d lines for %d leaves", file, len(lines), n)
	}
	var leaves [][]byte
	for _, l := range lines[1+n:] {
		leaf, err := base64.StdEncoding.DecodeString(string(l))
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leaf)
	}
	return h, leaves
}

func leafRecorded(t *testing.T, leaf []byte) time.Time {
	t.Helper()
	var ev struct{ Recorded time.Time }
	if err := json.Unmarshal(leaf, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Recorded
}

// TestAuditArchiveCLI: audit archive cuts the log at --before (no leaf
// recorded at or after the date is in the segment, the first leaf left out
// is), writes a segment that verify-archive accepts with the public key
// file alone, records it and audits it (the event names the file's
// SHA-256), writes nothing when nothing new is old enough, continues from
// the last segment, puts a sealed copy into a backup repository, and
// verify-archive names the leaf of a flipped bit. Bad flags get one line
// and a hint.
func TestAuditArchiveCLI(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "d")
	var out, errb bytes.Buffer
	if code := run([]string{"init", "--data", dir, "--dev-key"}, &out, &errb); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), &errb)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(time.Hour).Truncate(time.Second)
	for i := range 20 {
		e := &audit.Event{Time: t0.Add(time.Duration(i) * time.Hour), Interaction: "read", Action: "R", Outcome: "0",
			UserID: fmt.Sprintf("u%d", i), Patients: []string{fmt.Sprintf("p%d", i)}, Allowed: true}
		if err := n.audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	size, err := n.audit.Prover().Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.close()
	first := size - 20 // leaves before are init's, recorded now
	cut := t0.Add(10*time.Hour + 30*time.Minute)
	key := filepath.Join(dir, auditVKeyFile)

	archive := func(args ...string) (int, string, string) {
		out.Reset()
		errb.Reset()
		code := run(append([]string{"audit", "archive", "--data", dir}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	verifyArchive := func(args ...string) (int, string, string) {
		out.Reset()
		errb.Reset()
		code := run(append([]string{"audit", "verify-archive"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	// Bad flags: exit 2, one line and a hint, nothing archived.
	exists := filepath.Join(tmp, "exists")
	os.WriteFile(exists, nil, 0o600)
	for _, bad := range [][]string{
		{"--out", "x"},
		{"--before", cut.Format(time.RFC3339), "--upto", "3", "--out", filepath.Join(tmp, "x")},
		{"--before", "last tuesday", "--out", filepath.Join(tmp, "x")},
		{"--before", "2020-01-01"},
		{"--before", "2020-01-01", "--out", exists},
		{"--before", "2020-01-01", "--out", filepath.Join(tmp, "x"), "--retention", "5y"},
		{"--upto", "0", "--out", filepath.Join(tmp, "x")},
		{"--upto", "99999", "--out", filepath.Join(tmp, "x")},
		{"--bogus"},
		{"--upto", "-1", "--out", filepath.Join(tmp, "x")},
	} {
		code, _, e := archive(bad...)
		lines := strings.Split(strings.TrimSpace(e), "\n")
		if code != exitUsage || !strings.HasPrefix(lines[len(lines)-1], "hint: ") || !strings.HasPrefix(lines[len(lines)-2], "phivault audit: ") {
			t.Errorf("%v: exit %d, stderr %q; want %d, an error line and a hint", bad, code, e, exitUsage)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "x")); err == nil {
		t.Fatal("a refused archive wrote a file")
	}

	// The first segment, cut at a date.
	seg1 := filepath.Join(tmp, "seg1.jsonl")
	if code, _, e := archive("--before", cut.Format(time.RFC3339), "--out", seg1); code != 0 {
		t.Fatalf("archive: %d %s", code, e)
	}
	h, leaves := archiveLeaves(t, seg1)
	if h.From != 0 || h.To != first+11 || uint64(len(leaves)) != h.To {
		t.Fatalf("segment [%d, %d) with %d leaves, want [0, %d)", h.From, h.To, len(leaves), first+11)
	}
	for i, l := range leaves {
		if !leafRecorded(t, l).Before(cut) {
			t.Errorf("leaf %d recorded %s is in a segment cut at %s", i, leafRecorded(t, l), cut)
		}
	}
	code, o, e := verifyArchive(seg1, "--key", key)
	if code != 0 || !strings.Contains(o, "OK: the segment verifies") {
		t.Fatalf("verify-archive: %d %s %s", code, o, e)
	}
	sum1 := sha256.Sum256(must(os.ReadFile(seg1)))

	// Nothing new before the date: no segment, a clear message, exit 0.
	seg2 := filepath.Join(tmp, "seg2.jsonl")
	if code, _, e := archive("--before", cut.Format(time.RFC3339), "--out", seg2); code != 0 || !strings.Contains(e, "nothing to archive") {
		t.Fatalf("archiving again: %d %q", code, e)
	}
	if _, err := os.Stat(seg2); err == nil {
		t.Fatal("archiving nothing wrote a segment")
	}

	// The archive is audited, with the file's hash, and recorded.
	out.Reset()
	if code := run([]string{"audit", "export", "--data", dir, "--since", itoa(size)}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	if !strings.Contains(out.String(), `"code":"audit-archive"`) || !strings.Contains(out.String(), fmt.Sprintf("%x", sum1)) {
		t.Fatalf("the archive event (with sha256 %x) is not in the log: %s", sum1, out.String())
	}

	// The leaf just after the first segment is the first at/after the cut.
	n, err = openNode(ctx, dir, slog.New(slog.DiscardHandler), &errb)
	if err != nil {
		t.Fatal(err)
	}
	l, err := n.audit.Prover().Leaf(ctx, h.To)
	if err != nil || leafRecorded(t, l).Before(cut) {
		t.Fatalf("leaf %d, the first left out, recorded %s, want at/after %s", h.To, leafRecorded(t, l), cut)
	}
	size, _ = n.audit.Prover().Size(ctx)
	n.close()

	// A backup repository for --repo.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(tmp, "repo")
	out.Reset()
	if code := run([]string{"backup", "create", "--data", dir, "--repo", repo, "--recipient", id.Recipient().String()}, &out, &errb); code != 0 {
		t.Fatalf("backup create: %s", errb.String())
	}

	// The second segment continues the first, to stdout and the repository.
	code, segOut, e := archive("--upto", itoa(size), "--out", "-", "--repo", repo)
	if code != 0 {
		t.Fatalf("second archive: %d %s", code, e)
	}
	seg3 := filepath.Join(tmp, "seg3.jsonl")
	os.WriteFile(seg3, []byte(segOut), 0o600)
	h3, _ := archiveLeaves(t, seg3)
	if h3.From != h.To || h3.To != size {
		t.Fatalf("second segment [%d, %d), want [%d, %d)", h3.From, h3.To, h.To, size)
	}
	if code, o, e := verifyArchive(seg3, "--key", key); code != 0 {
		t.Fatalf("verify the second segment: %d %s %s", code, o, e)
	}
	sealed, err := os.ReadFile(filepath.Join(repo, "audit-archive", fmt.Sprintf("%020d-%020d.age", h3.From, h3.To)))
	if err != nil {
		t.Fatalf("no segment in the repository: %v", err)
	}
	if bytes.Contains(sealed, []byte("AuditEvent")) {
		t.Fatal("the repository copy is not encrypted")
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	plain.ReadFrom(r)
	if plain.String() != segOut {
		t.Fatal("the repository copy differs from the segment written")
	}

	// The store records both segments, chained, with their hashes.
	n, err = openNode(ctx, dir, slog.New(slog.DiscardHandler), &errb)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.ArchiveRecord
	n.db.View(ctx, func(r store.Reader) (err error) { recs, err = audit.Archives(r); return err })
	n.close()
	if len(recs) != 2 || recs[0].To != recs[1].From || recs[0].SHA256 != fmt.Sprintf("%x", sum1) ||
		recs[1].SHA256 != fmt.Sprintf("%x", sha256.Sum256([]byte(segOut))) {
		t.Fatalf("records %+v", recs)
	}
	// The live log keeps everything and still verifies.
	if code := run([]string{"audit", "verify", "--data", dir, "--key", key, "--index"}, &out, &errb); code != 0 {
		t.Fatalf("audit verify after archiving: %s", errb.String())
	}

	// A flipped bit in a leaf is named by its index.
	b := must(os.ReadFile(seg1))
	lines := bytes.Split(b, []byte("\n"))
	k := int(h.To) / 2
	leaf, _ := base64.StdEncoding.DecodeString(string(lines[1+int(h.To)+k]))
	leaf[len(leaf)/2] ^= 0x04
	lines[1+int(h.To)+k] = []byte(base64.StdEncoding.EncodeToString(leaf))
	bad := filepath.Join(tmp, "bad.jsonl")
	os.WriteFile(bad, bytes.Join(lines, []byte("\n")), 0o600)
	if code, _, e := verifyArchive(bad, "--key", key); code != exitFail || !strings.Contains(e, fmt.Sprintf("leaf %d:", k)) {
		t.Fatalf("tampered segment: exit %d, %q; want %d naming leaf %d", code, e, exitFail, k)
	}
	// Another log's key fails; no key or no file is a usage error.
	_, other, _ := audit.GenerateKey(auditOriginBase + "other")
	if code, _, e := verifyArchive(seg1, "--key", other); code != exitFail || !strings.Contains(e, "signature") {
		t.Fatalf("another key: exit %d, %q", code, e)
	}
	for _, args := range [][]string{{seg1}, {"--key", key}, {seg1, "--key", filepath.Join(tmp, "nokey")}} {
		if code, _, e := verifyArchive(args...); code != exitUsage || !strings.Contains(e, "hint: ") {
			t.Errorf("verify-archive %v: exit %d, %q; want %d with a hint", args, code, e, exitUsage)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
