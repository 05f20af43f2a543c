package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store/sqlite"
)

// TestRestoreBefore restores the newest snapshot taken before a time, and
// refuses bad times, both selectors at once, and a time before every
// snapshot, each with one line and a hint and nothing restored.
func TestRestoreBefore(t *testing.T) {
	f := newBackupFixture(t, 2)
	f.create(t)
	first, err := readerFor(t, f).Latest()
	if err != nil {
		t.Fatal(err)
	}
	between := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	changeOnePercent(t, f.data)
	f.create(t)
	second, err := readerFor(t, f).Latest()
	if err != nil || second.ID == first.ID {
		t.Fatalf("second snapshot: %v", err)
	}

	to := filepath.Join(t.TempDir(), "r")
	code, out, errOut := runCLI("restore", "--repo", f.repo, "--identity", f.idFile, "--to", to, "--before", between.Format(time.RFC3339Nano))
	if code != exitOK || !strings.Contains(out, "restored snapshot "+first.ID) || !strings.Contains(out, "OK:") {
		t.Fatalf("restore --before %s: exit %d, want snapshot %s\n%s%s", between.Format(time.RFC3339Nano), code, first.ID, out, errOut)
	}
	// A time after both restores the newer.
	to2 := filepath.Join(t.TempDir(), "r2")
	code, out, errOut = runCLI("restore", "--repo", f.repo, "--identity", f.idFile, "--to", to2, "--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if code != exitOK || !strings.Contains(out, "restored snapshot "+second.ID) {
		t.Fatalf("restore --before an hour from now: exit %d, want snapshot %s\n%s%s", code, second.ID, out, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--before", "yesterday"}, exitUsage, "RFC 3339"},
		{[]string{"--before", "2026-11-29T10:00:00"}, exitUsage, "RFC 3339"},
		{[]string{"--before", between.Format(time.RFC3339Nano), "--snapshot", first.ID}, exitUsage, "mutually exclusive"},
		{[]string{"--before", first.Created.Add(-time.Hour).Format(time.RFC3339)}, exitFail, "no snapshot that checks was taken before"},
	} {
		code, _, errOut := runCLI(append([]string{"restore", "--repo", f.repo, "--identity", f.idFile, "--to", bad}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "hint:") || strings.Count(strings.TrimSpace(errOut), "\n") != 1 {
			t.Errorf("restore %q: exit %d %q; want exit %d, %q and a hint", c.args, code, errOut, c.code, c.want)
		}
		if _, err := os.Stat(bad); !os.IsNotExist(err) {
			t.Fatalf("restore %q created the target", c.args)
		}
	}
}

// TestRestoreDrill drills a good repository (PASS, exit 0, RTO printed,
// recorded in the live audit log, scratch directory 0700 and kept only
// with --keep) and a damaged one (FAIL naming the check, exit non-zero,
// recorded, no scratch left).
func TestRestoreDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("restores, serves over HTTPS and queries (about 10 s)")
	}
	f := newBackupFixture(t, 3)
	f.create(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	audits := func() int64 {
		c, err := storeCounts(context.Background(), filepath.Join(f.data, sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		return c["audit"]
	}
	before := audits()

	code, out, errOut := runCLI("restore", "drill", "--repo", f.repo, "--identity", f.idFile, "--data", f.data, "--keep")
	if code != exitOK || !strings.Contains(out, "drill PASS: snapshot ") || !strings.Contains(out, "RTO ") {
		t.Fatalf("drill of a good repository: exit %d\n%s%s", code, out, errOut)
	}
	t.Log(out)
	if !strings.Contains(out, "drill recorded in the audit log of "+f.data) || audits() != before+1 {
		t.Errorf("the drill is not recorded in the live audit log (%d entries, was %d):\n%s", audits(), before, out)
	}
	_, kept, ok := strings.Cut(out, "scratch directory (kept): ")
	kept, _, _ = strings.Cut(kept, "\n")
	fi, err := os.Stat(kept)
	if !ok || err != nil || fi.Mode().Perm() != 0o700 || !strings.HasPrefix(kept, tmp) {
		t.Fatalf("kept scratch directory %q: %v %v", kept, fi, err)
	}
	if _, err := os.Stat(filepath.Join(kept, "data", sqlite.FileName)); err != nil {
		t.Errorf("the kept scratch directory holds no restored store: %v", err)
	}
	os.RemoveAll(kept)

	// Without --data the drill is only printed.
	if code, out, _ := runCLI("restore", "drill", "--repo", f.repo, "--identity", f.idFile); code != exitOK || !strings.Contains(out, "not recorded") {
		t.Errorf("drill without --data: exit %d\n%s", code, out)
	}

	// With a server holding the live directory, through its admin socket.
	sctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: f.data, listen: "127.0.0.1:0", logLevel: "error", stop: sctx, ready: func(u string) { ready <- u }}, io.Discard)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	code, out, errOut = runCLI("restore", "drill", "--repo", f.repo, "--identity", f.idFile, "--data", f.data)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if code != exitOK || !strings.Contains(out, "drill recorded in the audit log of the server serving "+f.data) {
		t.Fatalf("drill with the live directory served: exit %d\n%s%s", code, out, errOut)
	}
	if audits() != before+2 {
		t.Errorf("the drill through the admin socket is not recorded: %d audit entries, want %d", audits(), before+2)
	}
	before++

	// Delete a chunk of the database file: the drill fails at the restore.
	m, err := readerFor(t, f).Latest()
	if err != nil {
		t.Fatal(err)
	}
	c := m.Files[0].Chunks[0]
	if err := os.Remove(filepath.Join(f.repo, "data", c.ID[:2], c.ID)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI("restore", "drill", "--repo", f.repo, "--identity", f.idFile, "--data", f.data)
	if code != exitFail || !strings.Contains(out, "drill FAIL: restore: ") || strings.Contains(out, "PASS") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("drill of a damaged repository: exit %d; want FAIL naming the restore\n%s%s", code, out, errOut)
	}
	if audits() != before+2 {
		t.Errorf("the failed drill is not recorded: %d audit entries, want %d", audits(), before+2)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("scratch left behind: %v", left)
	}
}
