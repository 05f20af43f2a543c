package main

// Write throughput during an online backup (issue 8, acceptance 2): a load
// generator commits transactions at full speed for a fixed period without
// a backup, then for the same period while backups of the same data
// directory run back to back, alternating, in one run; the figure is the
// ratio of the two rates. The consistency of a snapshot taken under load
// is TestBackupWhileWriting's.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/synth"
)

// onlineRun is the load generator's figures with and without backups.
type onlineRun struct {
	quietTx, busyTx   int64
	quietDur, busyDur time.Duration
	backups           int
	backupTime        time.Duration // total time inside backup create
	writers           int
	firstErr          error
}

func (r onlineRun) quietRate() float64 { return float64(r.quietTx) / r.quietDur.Seconds() }
func (r onlineRun) busyRate() float64  { return float64(r.busyTx) / r.busyDur.Seconds() }

// writesDuringBackup runs writers transaction writers on dir (each
// transaction creates two Observations through the FHIR API, audited)
// and alternates rounds of period without a backup and period of
// back-to-back backups into a directory repository.
func writesDuringBackup(tb testing.TB, dir string, writers, rounds int, period time.Duration) onlineRun {
	tb.Helper()
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatal(err)
	}
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	defer n.close()
	repo, err := openRepoForWrite(dir, filepath.Join(tb.TempDir(), "repo"), []string{id.Recipient().String()}, "", io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	c := apiClient(n)
	run := onlineRun{writers: writers}
	var stop atomic.Bool
	var committed atomic.Int64
	var errOnce sync.Once
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				tag := fmt.Sprintf("load-%d-%d", w, i)
				obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": tag}}
				entry := map[string]any{"resource": obs, "request": map[string]any{"method": "POST", "url": "Observation"}}
				bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{entry, entry}}
				if code, err := send(c, http.MethodPost, "", bundle); err != nil || code != http.StatusOK {
					errOnce.Do(func() { run.firstErr = fmt.Errorf("transaction: %d %v", code, err) })
					return
				}
				committed.Add(1)
			}
		}()
	}
	for committed.Load() < int64(writers) && run.firstErr == nil {
		time.Sleep(time.Millisecond) // warm: every writer has committed once
	}
	for range rounds {
		c0, t0 := committed.Load(), time.Now()
		time.Sleep(period)
		run.quietTx += committed.Load() - c0
		run.quietDur += time.Since(t0)

		c0, t0 = committed.Load(), time.Now()
		for time.Since(t0) < period {
			b0 := time.Now()
			if _, _, err := createSnapshot(ctx, dir, repo); err != nil {
				stop.Store(true)
				wg.Wait()
				tb.Fatalf("backup create under load: %v", err)
			}
			run.backupTime += time.Since(b0)
			run.backups++
		}
		run.busyTx += committed.Load() - c0
		run.busyDur += time.Since(t0)
	}
	stop.Store(true)
	wg.Wait()
	if run.firstErr != nil {
		tb.Fatal(run.firstErr)
	}
	return run
}

// BenchmarkBackupWriteThroughput reports the load generator's transaction
// rate while backups run as a ratio of its rate without: a synthetic
// population (PHIVAULT_BENCH_PATIENTS, default 100) or a copy of a stopped
// data directory (PHIVAULT_BENCH_DIR); PHIVAULT_BENCH_PERIOD sets each
// phase's length (default 4s), and two rounds alternate. Run with
// -benchtime=1x.
func BenchmarkBackupWriteThroughput(b *testing.B) {
	period := 4 * time.Second
	if s := os.Getenv("PHIVAULT_BENCH_PERIOD"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			period = d
		}
	}
	patients := 100
	if s := os.Getenv("PHIVAULT_BENCH_PATIENTS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			patients = n
		}
	}
	for range b.N {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "data")
		if src := os.Getenv("PHIVAULT_BENCH_DIR"); src != "" {
			if err := copyStoppedDir(src, dir); err != nil {
				b.Fatal(err)
			}
		} else {
			if _, err := initDir(dir, nil, io.Discard); err != nil {
				b.Fatal(err)
			}
			if _, _, err := loadDemo(dir, synth.Options{Seed: 7, Patients: patients}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		size := dirBytes(b, dir)
		b.StartTimer()
		r := writesDuringBackup(b, dir, 2, 2, period)
		b.ReportMetric(r.quietRate(), "tx/s-without")
		b.ReportMetric(r.busyRate(), "tx/s-during")
		b.ReportMetric(r.busyRate()/r.quietRate(), "during/without")
		b.ReportMetric(float64(r.backups), "backups")
		b.Logf("data directory %.1f MB; %d writers; without: %d tx in %v; during %d backups (%v in backup create, %v each): %d tx in %v",
			float64(size)/1e6, r.writers, r.quietTx, r.quietDur.Round(time.Millisecond), r.backups, r.backupTime.Round(time.Millisecond),
			(r.backupTime / time.Duration(r.backups)).Round(time.Millisecond), r.busyTx, r.busyDur.Round(time.Millisecond))
	}
}

// copyStoppedDir copies a stopped data directory without its backup write
// keys and lock, as a new node's would be.
func copyStoppedDir(src, dst string) error {
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %v %s", src, err, out)
	}
	os.Remove(filepath.Join(dst, lockFileName))
	return os.RemoveAll(filepath.Join(dst, backupKeysDir))
}
