package main

// Backup and restore measured side by side with restic (issue 8,
// acceptance 6): the same stopped data directory, backed up twice (the
// second time after changing 1% of the resources) and restored, by each
// tool in the same run. Figures go to docs/benchmarks.md.

import (
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/synth"
)

// requireRestic returns the restic binary, or skips (fails when CI=true).
func requireRestic(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("restic")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("restic is not installed (Debian package restic); it is required when CI=true")
		}
		tb.Skip("restic is not installed (apt-get install restic); skipping the comparison (required when CI=true)")
	}
	return p
}

// dirBytes is the size of the regular files under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// toolRun is one tool's figures for one data directory.
type toolRun struct {
	backup1, backup2, restore time.Duration
	repo1, repo2              int64  // repository size after each backup
	restored                  string // phivault's restored data directory
}

// secondRatio is what the second backup added, relative to the first.
func (r toolRun) secondRatio() float64 { return float64(r.repo2-r.repo1) / float64(r.repo1) }

// compareBackups backs up dir with phivault and restic (when restic is
// non-empty), changes 1% of its resources, backs up again, and restores
// the second snapshot with each; it returns the figures and the number of
// current resources. The directory is not served meanwhile (stopped).
func compareBackups(tb testing.TB, dir, restic string) (pv, rs toolRun, resources int64) {
	tb.Helper()
	ctx := context.Background()
	work := tb.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatal(err)
	}
	idFile := filepath.Join(work, "officer.key")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	pvRepo, rsRepo := filepath.Join(work, "pv-repo"), filepath.Join(work, "restic-repo")
	resticCmd := func(args ...string) {
		tb.Helper()
		cmd := exec.CommandContext(ctx, restic, append([]string{"--repo", rsRepo, "--cache-dir", filepath.Join(work, "restic-cache"), "--quiet"}, args...)...)
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD=benchmark-only-password")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	pvBackup := func() time.Duration {
		tb.Helper()
		start := time.Now()
		code, out, errOut := runCLI("backup", "create", "--data", dir, "--repo", pvRepo, "--recipient", id.Recipient().String())
		if code != exitOK {
			tb.Fatalf("backup create: %d %s %s", code, out, errOut)
		}
		return time.Since(start)
	}
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	if restic != "" {
		resticCmd("init")
	}
	// The first backups; a backup-keys directory appears in dir after the
	// first phivault backup, so restic backs up after it, as it would on
	// a node.
	pv.backup1 = pvBackup()
	pv.repo1 = dirBytes(tb, pvRepo)
	if restic != "" {
		rs.backup1 = timed(func() { resticCmd("backup", dir) })
		rs.repo1 = dirBytes(tb, rsRepo)
	}
	changeOnePercent(tb, dir)
	pv.backup2 = pvBackup()
	pv.repo2 = dirBytes(tb, pvRepo)
	if restic != "" {
		rs.backup2 = timed(func() { resticCmd("backup", dir) })
		rs.repo2 = dirBytes(tb, rsRepo)
	}
	pv.restored = filepath.Join(work, "pv-restored")
	pv.restore = timed(func() {
		to := pv.restored
		code, out, errOut := runCLI("restore", "--repo", pvRepo, "--identity", idFile, "--to", to)
		if code != exitOK || !strings.Contains(out, "OK:") {
			tb.Fatalf("restore: %d %s %s", code, out, errOut)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "checked ") {
				f := strings.Fields(l) // checked N versions of M resources
				if len(f) >= 5 {
					resources, _ = strconv.ParseInt(f[4], 10, 64)
				}
			}
		}
	})
	if restic != "" {
		rs.restore = timed(func() { resticCmd("restore", "latest", "--target", filepath.Join(work, "restic-restored")) })
	}
	return pv, rs, resources
}

// reportComparison reports the figures as benchmark metrics (and logs).
func reportComparison(tb testing.TB, report func(float64, string), size int64, resources int64, pv, rs toolRun) {
	mb := float64(size) / 1e6
	rate := func(d time.Duration) float64 { return mb / d.Seconds() }
	res := func(d time.Duration) float64 { return float64(resources) / d.Seconds() }
	report(rate(pv.backup1), "phivault-backup-MB/s")
	report(res(pv.backup1), "phivault-backup-res/s")
	report(rate(pv.restore), "phivault-restore-MB/s")
	report(res(pv.restore), "phivault-restore-res/s")
	report(pv.secondRatio(), "phivault-2nd/1st")
	tb.Logf("data directory %.1f MB, %d resources; phivault: backup %v (second %v), restore %v (RTO), repository %d then +%d bytes (%.4f)",
		mb, resources, pv.backup1, pv.backup2, pv.restore, pv.repo1, pv.repo2-pv.repo1, pv.secondRatio())
	if rs.backup1 == 0 {
		return
	}
	report(rate(rs.backup1), "restic-backup-MB/s")
	report(rate(rs.restore), "restic-restore-MB/s")
	report(rs.secondRatio(), "restic-2nd/1st")
	report(rs.backup1.Seconds()/pv.backup1.Seconds(), "backup-speed-pv/restic")
	report(rs.restore.Seconds()/pv.restore.Seconds(), "restore-speed-pv/restic")
	tb.Logf("restic: backup %v (second %v), restore %v, repository %d then +%d bytes (%.4f)",
		rs.backup1, rs.backup2, rs.restore, rs.repo1, rs.repo2-rs.repo1, rs.secondRatio())
}

// BenchmarkBackupVsRestic: a synthetic population (PHIVAULT_BENCH_PATIENTS,
// default 100) per iteration, or a copy of an existing stopped data
// directory (PHIVAULT_BENCH_DIR, e.g. one holding the Synthea sets); run
// with -benchtime=1x.
func BenchmarkBackupVsRestic(b *testing.B) {
	restic := requireRestic(b)
	if src := os.Getenv("PHIVAULT_BENCH_DIR"); src != "" {
		for range b.N {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "data")
			if out, err := exec.Command("cp", "-a", src, dir).CombinedOutput(); err != nil {
				b.Fatalf("copy %s: %v %s", src, err, out)
			}
			os.RemoveAll(filepath.Join(dir, backupKeysDir))
			os.Remove(filepath.Join(dir, lockFileName))
			size := dirBytes(b, dir)
			b.StartTimer()
			pv, rs, resources := compareBackups(b, dir, restic)
			reportComparison(b, b.ReportMetric, size, resources, pv, rs)
		}
		return
	}
	patients := 100
	if s := os.Getenv("PHIVAULT_BENCH_PATIENTS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			patients = n
		}
	}
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		if _, err := initDir(dir, nil, io.Discard); err != nil {
			b.Fatal(err)
		}
		if _, _, err := loadDemo(dir, synth.Options{Seed: 7, Patients: patients}, io.Discard); err != nil {
			b.Fatal(err)
		}
		size := dirBytes(b, dir)
		b.StartTimer()
		pv, rs, resources := compareBackups(b, dir, restic)
		reportComparison(b, b.ReportMetric, size, resources, pv, rs)
	}
}

// TestBackupSyntheaRTO backs up the store holding both Synthea sets (the
// shared acceptance fixture), changes 1% of it, backs up again and
// restores with the full checks: the RTO and the first-to-second size
// ratio (the restic comparison is BenchmarkBackupVsRestic's). The restore
// checks counts, the audit root, every resource's index digest and every
// version; the test then requires the current-version table identical and
// the restored store to answer the same searches with the same results.
// It skips with -short or without the corpus (fails when CI=true).
func TestBackupSyntheaRTO(t *testing.T) {
	fx := syntheaData(t)
	backupRoundTrip(t, fx.dir, fx.resources)
}

// backupRoundTrip is TestBackupSyntheaRTO on a copy of the data directory
// src holding about resources resources.
func backupRoundTrip(t *testing.T, src string, resources0 int64) {
	// A copy: the shared fixture must stay as the other tests expect it.
	dir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", src, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	os.RemoveAll(filepath.Join(dir, backupKeysDir))
	os.Remove(filepath.Join(dir, lockFileName))
	size := dirBytes(t, dir)
	pv, rs, resources := compareBackups(t, dir, "")
	if resources < resources0/2 {
		t.Fatalf("restored %d resources of about %d", resources, resources0)
	}
	reportComparison(t, func(v float64, unit string) { t.Logf("%s %.3f", unit, v) }, size, resources, pv, rs)
	if want, got := tableRows(t, dir, "current"), tableRows(t, pv.restored, "current"); len(want) < 1000 || !slices.Equal(want, got) {
		t.Fatalf("restored current-version table: %d rows, the original %d (or they differ)", len(got), len(want))
	}
	// Totals of broad searches, and the whole result of the ones small
	// enough to fetch in one page.
	matched := 0
	for _, q := range []string{
		"/Patient?gender=female",
		"/Patient?birthdate=lt1940-01-01",
		"/Observation?code=http://loinc.org|8302-2",
		"/Condition?_lastUpdated=gt2000-01-01",
		"/Encounter?status=finished",
		"/MedicationRequest?status=active",
		"/Immunization?vaccine-code=http://hl7.org/fhir/sid/cvx|140",
	} {
		want, got := backupSearchTotal(t, dir, q), backupSearchTotal(t, pv.restored, q)
		if want != got {
			t.Errorf("%s: the restored store counts %d, the original %d", q, got, want)
			continue
		}
		matched += min(want, 1)
		if want > 0 && want <= 1000 {
			if w, g := backupSearchIDs(t, dir, q+"&_count=1000"), backupSearchIDs(t, pv.restored, q+"&_count=1000"); len(w) != want || !slices.Equal(w, g) {
				t.Errorf("%s: the restored store found %d resources, the original %d (or others)", q, len(g), len(w))
			}
		}
	}
	if matched < 4 {
		t.Errorf("only %d of the searches matched anything: the comparison shows little", matched)
	}
}
