package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/store/sqlite"
	"github.com/phivault/phivault/internal/synth"
)

// pgBackupFixture is newBackupFixture with the loaded directory moved onto
// a fresh PostgreSQL schema (migrate --from), so f.data is a PostgreSQL
// data directory. It also returns the DSN.
func pgBackupFixture(t *testing.T, patients int) (*backupFixture, string) {
	t.Helper()
	dsn, _ := migrateDSN(t)
	f := newBackupFixture(t, patients)
	if code, out, errOut := runCLI("migrate", "--from", f.data, "--to", dsn); code != exitOK {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	if c, err := readStoreConfig(f.data); err != nil || c.Backend != "postgres" {
		t.Fatalf("store.json after the move: %+v %v", c, err)
	}
	return f, dsn
}

// auditRoot runs 'audit verify' on dir, fails the test unless it passes,
// and returns the leaf count and root it printed.
func auditRoot(t *testing.T, dir string) (leaves, root string) {
	t.Helper()
	code, out, errOut := runCLI("audit", "verify", "--data", dir)
	m := regexp.MustCompile(`(?s)leaves: (\d+)\n.*root: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if code != exitOK || m == nil {
		t.Fatalf("audit verify %s: exit %d\n%s%s", dir, code, out, errOut)
	}
	return m[1], m[2]
}

// TestBackupPostgres: a PostgreSQL data directory with imported resources
// and audited reads is backed up with 'backup create'; the snapshot
// restores into an embedded store that reads back the same resources and
// searches, holds every version and audit leaf, and verifies with the same
// audit tree size and root; 'migrate --from' then moves the restored store
// onto a new PostgreSQL schema, which reads the same again: a PostgreSQL
// installation can be recovered onto PostgreSQL.
func TestBackupPostgres(t *testing.T) {
	f, _ := pgBackupFixture(t, 3)
	ctx := context.Background()

	// New resources imported on PostgreSQL, then reads through the API
	// (each audited) so the log grows after the move.
	files := []string{"import", "--data", f.data}
	for i, b := range synth.Generate(synth.Options{Seed: 42, Patients: 1}) {
		raw, _ := json.Marshal(b)
		p := filepath.Join(t.TempDir(), fmt.Sprintf("new%d.json", i))
		os.WriteFile(p, raw, 0o600)
		files = append(files, p)
	}
	if code, out, errOut := runCLI(files...); code != exitOK {
		t.Fatalf("import on PostgreSQL: exit %d\n%s%s", code, out, errOut)
	}
	leavesBefore, _ := auditRoot(t, f.data)
	n, err := openNode(ctx, f.data, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := n.records.Match(ctx, store.MatchQuery{Type: "Patient"})
	if err != nil || len(ids) != 4 {
		t.Fatalf("patients on PostgreSQL: %v %v", ids, err)
	}
	c := apiClient(n)
	for _, id := range ids {
		if code, err := send(c, http.MethodGet, "/Patient/"+id, nil); err != nil || code != http.StatusOK {
			t.Fatalf("read Patient/%s: %d %v", id, code, err)
		}
	}
	n.close()
	leaves, root := auditRoot(t, f.data)
	if leaves == leavesBefore {
		t.Fatalf("the reads added no audit leaves (%s)", leaves)
	}
	want := readSnapshot(t, f.data)
	wantV, wantL := everything(t, f.data)

	out := f.create(t)
	if !strings.Contains(out, "audit tree size "+leaves+" root "+root) {
		t.Fatalf("backup create: want audit tree size %s root %s\n%s", leaves, root, out)
	}
	to := f.restore(t)
	if c, err := readStoreConfig(to); err != nil || c.Backend != "sqlite" {
		t.Fatalf("the restored directory's store: %+v %v", c, err)
	}
	if got := readSnapshot(t, to); !equalSnapshots(want, got) {
		t.Errorf("reads differ after the restore:\nbefore %+v\nafter  %+v", want, got)
	}
	gotV, gotL := everything(t, to)
	if d := cmp.Diff(wantV, gotV); d != "" {
		t.Errorf("restored versions differ (-want +got):\n%.2000s", d)
	}
	if !cmp.Equal(wantL, gotL) {
		t.Errorf("restored audit leaves differ: %d, want %d", len(gotL), len(wantL))
	}
	if l, r := auditRoot(t, to); l != leaves || r != root {
		t.Errorf("restored audit tree: size %s root %s, want %s %s", l, r, leaves, root)
	}

	// Back onto PostgreSQL.
	dsn2, _ := migrateDSN(t)
	code, mout, errOut := runCLI("migrate", "--from", to, "--to", dsn2)
	if code != exitOK || !strings.Contains(mout, "\nOK: "+to+" now uses ") {
		t.Fatalf("migrate the restored store to PostgreSQL: exit %d\n%s%s", code, mout, errOut)
	}
	if got := readSnapshot(t, to); !equalSnapshots(want, got) {
		t.Errorf("reads differ on the new PostgreSQL schema:\nbefore %+v\nafter  %+v", want, got)
	}
	if l, r := auditRoot(t, to); l < leaves || (l == leaves && r != root) {
		t.Errorf("audit tree on the new PostgreSQL schema: size %s root %s, want from %s %s", l, r, leaves, root)
	}
}

// TestBackupPostgresWhileWriting takes a snapshot of a PostgreSQL store
// while transactions of two resources each commit continuously: the
// snapshot is one point in time during the writes (every pair whole or
// absent, some but not all pairs), the counts it records are what the
// restore finds, and the restored audit log verifies with the size the
// snapshot records.
func TestBackupPostgresWhileWriting(t *testing.T) {
	f, _ := pgBackupFixture(t, 2)
	ctx := context.Background()
	n, err := openNode(ctx, f.data, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pw := startPairWriters(t, apiClient(n), 1)
	// Hang bounds only, with generous slack: the writer commits
	// transactions in milliseconds.
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() && !t.Failed() {
			if time.Now().After(deadline) {
				pw.halt()
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("5 transactions", func() bool { return pw.committed.Load() >= 5 })
	r, err := openRepoForWrite(f.data, f.repo, []string{f.recipient}, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := createSnapshot(ctx, f.data, r)
	before := pw.committed.Load()
	waitFor("5 more transactions", func() bool { return pw.committed.Load() >= before+5 })
	pw.halt()
	n.close()
	if err != nil {
		t.Fatal(err)
	}
	to := f.restore(t, "--snapshot", m.ID)
	restored, err := storeCounts(ctx, filepath.Join(to, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"versions", "resources", "deleted", "tokens", "meta", "audit"} {
		if restored[k] != m.Counts[k] {
			t.Errorf("%s: the snapshot records %d, the restore holds %d", k, m.Counts[k], restored[k])
		}
	}
	if l, _ := auditRoot(t, to); l != fmt.Sprint(m.Audit.Size) || m.Audit.Size == 0 {
		t.Errorf("restored audit log: %s leaves, the snapshot records %d", l, m.Audit.Size)
	}
	expectWholePairs(t, to, pw.committed.Load())
}

// TestBackupPostgresDumpSameBytes: the dump of a PostgreSQL store is byte
// for byte the dump of the embedded store it was moved from (versions,
// deleted ones included, audit leaves, metadata, index digests, facts),
// so one snapshot format serves both backends. A table the dump does not
// know fails the PostgreSQL dump, naming it.
func TestBackupPostgresDumpSameBytes(t *testing.T) {
	dsn, schema := migrateDSN(t)
	dir := loadedDir(t, 3)
	ctx := context.Background()
	// A deleted resource, so the deleted flag and tombstones are compared.
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := n.records.Match(ctx, store.MatchQuery{Type: "Observation"})
	if err != nil || len(obs) == 0 {
		t.Fatalf("observations: %v %v", obs, err)
	}
	if code, err := send(apiClient(n), http.MethodDelete, "/Observation/"+obs[0], nil); err != nil || code >= 300 {
		t.Fatalf("delete: %d %v", code, err)
	}
	n.close()
	if code, out, errOut := runCLI("migrate", "--from", dir, "--to", dsn); code != exitOK {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}

	lite, pg := filepath.Join(t.TempDir(), "lite"), filepath.Join(t.TempDir(), "pg")
	os.Mkdir(lite, 0o700)
	os.Mkdir(pg, 0o700)
	liteCounts, err := dumpStore(ctx, filepath.Join(dir, sqlite.FileName), lite)
	if err != nil {
		t.Fatal(err)
	}
	pgCounts, err := dumpStorePG(ctx, dsn, pg)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(liteCounts, pgCounts); d != "" || liteCounts["deleted"] != 1 {
		t.Errorf("counts differ (-sqlite +postgres), or not 1 deleted:\n%s", d)
	}
	for _, name := range []string{"versions", "audit", "meta", "index", factsName} {
		a, err := os.ReadFile(filepath.Join(lite, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(pg, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(a) < 40 {
			t.Errorf("the SQLite dump's %s holds only %d bytes", name, len(a))
		}
		if !bytes.Equal(a, b) {
			i := 0
			for i < min(len(a), len(b)) && a[i] == b[i] {
				i++
			}
			t.Errorf("%s: the PostgreSQL dump (%d bytes) differs from the SQLite dump (%d bytes) from byte %d", name, len(b), len(a), i)
		}
	}

	// The runtime role's grants are enough to back up (without them the
	// role may not even use the schema, so the dump does run as that role).
	admin := pgtest.AdminDSN(t)
	role := "phivault_bk_" + schema
	pgtest.Exec(t, admin, "CREATE ROLE "+role+" NOLOGIN")
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP OWNED BY "+role, "DROP ROLE "+role) })
	rdsn := pgtest.WithParam(dsn, "role", role)
	if _, err := dumpStorePG(ctx, rdsn, t.TempDir()); err == nil || !strings.Contains(err.Error(), "may use (USAGE)") {
		t.Fatalf("dump as a role without grants: %v", err)
	}
	pgtest.Exec(t, dsn, postgres.RuntimeGrants(schema, role)...)
	rt := t.TempDir()
	if _, err := dumpStorePG(ctx, rdsn, rt); err != nil {
		t.Fatalf("dump as the runtime role: %v", err)
	}
	for _, name := range []string{"versions", "index", factsName} {
		a, _ := os.ReadFile(filepath.Join(pg, name))
		b, err := os.ReadFile(filepath.Join(rt, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: the runtime role's dump differs from the owner's (%v)", name, err)
		}
	}

	pgtest.Exec(t, dsn, "CREATE TABLE notes (x integer)")
	_, err = dumpStorePG(ctx, dsn, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "tables this backup format does not cover: notes") {
		t.Fatalf("dump of a schema with an unknown table: %v", err)
	}
}

// TestBackupPostgresUnreachable: 'backup create' of a PostgreSQL directory
// whose database cannot be reached fails with one line naming the
// database without its password, and a hint; no snapshot is written.
func TestBackupPostgresUnreachable(t *testing.T) {
	f := newBackupFixture(t, 1)
	const db = "host=/nonexistent-pg-dir port=1 user=x dbname=y"
	if err := writeStoreConfig(f.data, db); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PHIVAULT_DB", db+" password=s3cret-pw")
	code, out, errOut := runCLI("backup", "create", "--data", f.data, "--repo", f.repo, "--recipient", f.recipient)
	if code != exitFail || !strings.Contains(errOut, "cannot dump the PostgreSQL store "+db+": ") ||
		!strings.Contains(errOut, "\nhint: ") || strings.Count(errOut, "\n") != 2 || strings.Contains(out+errOut, "s3cret-pw") {
		t.Fatalf("backup create with the database unreachable: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("%s", errOut)
	if snaps, _ := os.ReadDir(filepath.Join(f.repo, "snapshots")); len(snaps) != 0 {
		t.Fatalf("%d snapshots written", len(snaps))
	}
}

// TestServeBackupSchedulePostgres: serve on a PostgreSQL directory with
// --backup-every backs up on its own (the schedule is a leader job; the
// node leads through PostgreSQL's advisory lock), and the scheduled
// snapshot verifies and restores.
func TestServeBackupSchedulePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and waits for a scheduled backup (-short)")
	}
	f, _ := pgBackupFixture(t, 2)
	recips := filepath.Join(t.TempDir(), "recipients")
	if err := os.WriteFile(recips, []byte(f.recipient+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	sched := &backupSchedule{repo: f.repo, every: time.Second, maxAge: time.Minute, recipientsFile: recips, s3: s3FlagsFor(t)}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: f.data, listen: "127.0.0.1:0", logLevel: "info", backup: sched, ready: func(u string) { ready <- u }}, logs)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the server did not start")
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			syscall.Kill(os.Getpid(), syscall.SIGINT)
			if err := <-done; err != nil {
				t.Errorf("serve stopped with %v", err)
			}
		}
	}
	t.Cleanup(stop)
	waitFor(t, 2*time.Minute, "a scheduled snapshot", func() bool { return snapshotCount(f.repo) >= 1 })
	stop()
	if !strings.Contains(string(logs.Bytes()), `"msg":"scheduled backup done"`) {
		t.Errorf("no scheduled backup logged:\n%s", logs.Bytes())
	}
	code, out, errOut := runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data")
	if code != exitOK || !strings.Contains(out, "OK:") {
		t.Fatalf("verify of the scheduled snapshots: %d %s %s", code, out, errOut)
	}
	f.restore(t)
}
