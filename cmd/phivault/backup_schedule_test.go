package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/server"
)

// scrape reads the gauges and counters named phivault_backup_* from a
// Prometheus text endpoint.
func scrape(t *testing.T, c *http.Client, url string) map[string]float64 {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "phivault_backup_") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		out[name] = v
	}
	return out
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func snapshotCount(repo string) int {
	ents, _ := os.ReadDir(filepath.Join(repo, "snapshots"))
	return len(ents)
}

// TestServeBackupSchedule: serve with --backup-every backs up on its own,
// one snapshot after another, each a good backup that verifies and
// restores; /metrics shows the last success and the newest backup's age.
func TestServeBackupSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and takes several backups (-short)")
	}
	f := newBackupFixture(t, 3)
	recips := filepath.Join(t.TempDir(), "recipients")
	if err := os.WriteFile(recips, []byte("# backup officer\n"+f.recipient+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	sched := &backupSchedule{repo: f.repo, every: time.Second, maxAge: time.Minute, recipientsFile: recips, s3: s3FlagsFor(t)}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: f.data, listen: "127.0.0.1:0", logLevel: "info", backup: sched, ready: func(u string) { ready <- u }}, logs)
	}()
	var base string
	select {
	case base = <-ready:
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
	waitFor(t, 2*time.Minute, "two scheduled snapshots", func() bool { return snapshotCount(f.repo) >= 2 })

	c := tlsClient(t, filepath.Join(f.data, tlsDirName, "cert.pem"))
	m := scrape(t, c, base+"/metrics")
	now := float64(time.Now().UnixNano()) / 1e9
	if ls := m["phivault_backup_last_success_timestamp_seconds"]; ls < now-120 || ls > now {
		t.Errorf("last success %v, now %v", ls, now)
	}
	if la := m["phivault_backup_last_attempt_timestamp_seconds"]; la < m["phivault_backup_last_success_timestamp_seconds"]-5 {
		t.Errorf("last attempt %v before last success %v", la, m["phivault_backup_last_success_timestamp_seconds"])
	}
	if age := m["phivault_backup_newest_age_seconds"]; age <= 0 || age > 120 {
		t.Errorf("newest age %v s", age)
	}
	if m["phivault_backup_failures_total"] != 0 || m["phivault_backup_overdue"] != 0 || m["phivault_backup_max_age_seconds"] != 60 {
		t.Errorf("metrics: %v", m)
	}
	if m["phivault_backup_last_duration_seconds"] <= 0 {
		t.Errorf("last duration %v", m["phivault_backup_last_duration_seconds"])
	}
	// The age is computed at scrape time: it grows between scrapes.
	time.Sleep(50 * time.Millisecond)
	if a2 := scrape(t, c, base+"/metrics")["phivault_backup_newest_age_seconds"]; a2 == m["phivault_backup_newest_age_seconds"] {
		t.Errorf("the age did not change between scrapes (%v)", a2)
	}
	stop()
	n := snapshotCount(f.repo)
	if !strings.Contains(string(logs.Bytes()), `"msg":"scheduled backup done"`) {
		t.Errorf("no scheduled backup logged:\n%s", logs.Bytes())
	}
	// Every snapshot is a good backup: it verifies and the newest restores.
	code, out, errOut := runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data")
	if code != exitOK || !strings.Contains(out, "OK:") {
		t.Fatalf("verify of %d scheduled snapshots: %d %s %s", n, code, out, errOut)
	}
	f.restore(t)
}

// s3FlagsFor returns the S3 flags with their defaults, as serve parses them.
func s3FlagsFor(t *testing.T) *s3Flags {
	t.Helper()
	fs, _ := newFlags("test", "", io.Discard)
	s := addS3Flags(fs, true)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBackupScheduleFailingRepository: a repository that cannot be written
// counts failures, is tried again at each tick, and once the newest good
// backup is older than the limit the schedule says so on /metrics and in
// an ERROR log line; a working repository clears it.
func TestBackupScheduleFailingRepository(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the limit to pass (-short)")
	}
	f := newBackupFixture(t, 1)
	// A file where the repository directory should be: no account, root
	// included, can create the repository there.
	blocked := filepath.Join(t.TempDir(), "blocked")
	if err := os.WriteFile(blocked, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	recips := filepath.Join(t.TempDir(), "recipients")
	os.WriteFile(recips, []byte(f.recipient+"\n"), 0o600)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	sched := &backupSchedule{repo: filepath.Join(blocked, "repo"), every: time.Second, maxAge: 2 * time.Second, recipientsFile: recips, s3: s3FlagsFor(t)}
	job, err := sched.job(f.data, log)
	if err != nil || job.run == nil {
		t.Fatalf("job: %v", err)
	}
	metrics := server.NewMetrics()
	sched.registerMetrics(metrics.Registry())
	web := httptest.NewServer(metrics.Handler())
	defer web.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { job.run(ctx, nil); close(ran) }()
	defer func() { cancel(); <-ran }()

	waitFor(t, time.Minute, "overdue", func() bool { return scrape(t, web.Client(), web.URL)["phivault_backup_overdue"] == 1 })
	m := scrape(t, web.Client(), web.URL)
	if m["phivault_backup_failures_total"] < 2 || m["phivault_backup_last_success_timestamp_seconds"] != 0 || m["phivault_backup_newest_age_seconds"] <= 2 {
		t.Fatalf("after failures: %v", m)
	}
	if m["phivault_backup_last_attempt_timestamp_seconds"] == 0 {
		t.Fatalf("no attempt recorded: %v", m)
	}
	waitFor(t, 10*time.Second, "the alert in the log", func() bool {
		return strings.Contains(string(logs.Bytes()), `"level":"ERROR","msg":"ALERT: the newest good backup is older than the limit"`)
	})
	if !strings.Contains(string(logs.Bytes()), `"msg":"scheduled backup failed; trying again at the next tick"`) {
		t.Fatalf("failures not logged:\n%s", logs.Bytes())
	}
	// The repository becomes writable: the next tick backs up and the
	// alert clears.
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "a backup after the repository came back", func() bool {
		return scrape(t, web.Client(), web.URL)["phivault_backup_last_success_timestamp_seconds"] > 0
	})
	waitFor(t, 10*time.Second, "overdue cleared", func() bool { return scrape(t, web.Client(), web.URL)["phivault_backup_overdue"] == 0 })
	waitFor(t, 10*time.Second, "the all-clear in the log", func() bool {
		return strings.Contains(string(logs.Bytes()), `"msg":"the newest good backup is within the limit again"`)
	})
}

func TestBackupScheduleFlags(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	if _, err := initDir(data, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		s    *backupSchedule
		want string
	}{
		{&backupSchedule{every: time.Minute}, "--backup-every needs --backup-repo"},
		{&backupSchedule{repo: "r"}, "--backup-repo needs --backup-every of at least 1s"},
		{&backupSchedule{repo: "r", every: time.Hour, maxAge: time.Minute}, "--backup-max-age must not be shorter than --backup-every"},
		{&backupSchedule{repo: "r", every: time.Hour, recipientsFile: filepath.Join(data, "none")}, "cannot read the backup recipients file"},
	} {
		if _, err := c.s.job(data, log); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s every %s: %v, want %q", c.s.repo, c.s.every, err, c.want)
		}
	}
	// The default limit is twice the interval, at most 48 hours.
	for every, want := range map[time.Duration]time.Duration{15 * time.Minute: 30 * time.Minute, 36 * time.Hour: 48 * time.Hour} {
		s := &backupSchedule{repo: "r", every: every, s3: s3FlagsFor(t)}
		if _, err := s.job(data, log); err != nil || s.maxAge != want {
			t.Errorf("every %s: max age %s (%v), want %s", every, s.maxAge, err, want)
		}
	}
	// No schedule: no job, no metrics.
	if j, err := (&backupSchedule{}).job(data, log); err != nil || j.run != nil {
		t.Errorf("no schedule: %v", err)
	}
}
