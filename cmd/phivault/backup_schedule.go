package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/store"
)

// maxBackupAge caps the default --backup-max-age: the proposed HIPAA
// Security Rule update asks for backups no older than 48 hours.
const maxBackupAge = 48 * time.Hour

// backupSchedule is serve's scheduled backup: 'backup create' (the same
// consistent online snapshot, the same erasure list) every interval, on
// the leader, one at a time. It never prunes: the server holds no
// credentials that may delete, and its code never sees a backup.Deleter.
type backupSchedule struct {
	repo, recipientsFile string
	every, maxAge        time.Duration
	s3                   *s3Flags
	now                  func() time.Time // the clock; time.Now when nil

	status backupStatus
}

// register adds the schedule's flags to serve's flag set.
func (b *backupSchedule) register(fs *flag.FlagSet) {
	fs.StringVar(&b.repo, "backup-repo", "", "back up to this repository on a schedule (a directory or s3://bucket/prefix), with --backup-every")
	fs.DurationVar(&b.every, "backup-every", 0, "with --backup-repo, take a backup this often, e.g. 15m (the leader only; never two at once)")
	fs.DurationVar(&b.maxAge, "backup-max-age", 0, "alert when the newest good backup is older than this (default: twice --backup-every, at most 48h)")
	fs.StringVar(&b.recipientsFile, "backup-recipients-file", "", "age recipients (one a line) to create the repository with, when --backup-repo holds none yet")
	b.s3 = addS3Flags(fs, true)
}

// job checks the flags against the data directory and returns the leader
// job that runs the schedule (a job with a nil run when no schedule is set).
func (b *backupSchedule) job(data string, log *slog.Logger) (leaderJob, error) {
	j := leaderJob{name: "backup-schedule"}
	if b == nil || (b.repo == "" && b.every == 0) {
		return j, nil
	}
	switch {
	case b.repo == "":
		return j, fail(exitUsage, "--backup-every needs --backup-repo", "pass --backup-repo DIR or s3://BUCKET/PREFIX")
	case b.every < time.Second:
		return j, fail(exitUsage, "--backup-repo needs --backup-every of at least 1s", "e.g. --backup-every 15m")
	}
	if b.maxAge == 0 {
		b.maxAge = min(2*b.every, maxBackupAge)
	}
	if b.maxAge < b.every {
		return j, fail(exitUsage, "--backup-max-age must not be shorter than --backup-every", "the default is twice --backup-every, at most 48h")
	}
	if _, err := readStoreConfig(data); err != nil {
		return j, err
	}
	var recips []string
	if b.recipientsFile != "" {
		rs, err := readLines(b.recipientsFile)
		if err != nil {
			return j, fail(exitUsage, "cannot read the backup recipients file: "+err.Error(), "--backup-recipients-file takes age recipients, one a line")
		}
		recips = rs
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.status.maxAge = b.maxAge
	j.run = func(ctx context.Context, _ store.Backend) { b.run(ctx, data, recips, log) }
	return j, nil
}

// run backs up at once when the newest good snapshot is due, then every
// interval counted from the start of the previous attempt; an attempt
// that outlasts the interval is followed by the next at once, never by
// two. A failure is logged and tried again at the next tick.
func (b *backupSchedule) run(ctx context.Context, data string, recips []string, log *slog.Logger) {
	log = log.With("job", "backup-schedule", "repo", b.repo)
	b.status.start(b.now())
	if t, ok := b.newestInRepo(ctx, data); ok {
		b.status.sawSnapshot(t)
	}
	next := b.now()
	if t := b.status.newestTime(); !t.IsZero() {
		next = t.Add(b.every)
	}
	stopWatch := b.watchOverdue(ctx, log)
	defer stopWatch()
	for {
		wait := time.NewTimer(max(next.Sub(b.now()), 0))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
		began := b.now()
		next = began.Add(b.every)
		b.attempt(ctx, data, recips, log)
	}
}

// attempt takes one backup and records the outcome.
func (b *backupSchedule) attempt(ctx context.Context, data string, recips []string, log *slog.Logger) {
	began := b.now()
	b.status.attempted(began)
	m, st, err := b.createOnce(ctx, data, recips)
	took := b.now().Sub(began)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		b.status.failed(took)
		log.Error("scheduled backup failed; trying again at the next tick", "err", errText(err), "duration", took.Round(time.Millisecond).String(), "next_in", b.every.String())
		return
	}
	b.status.succeeded(m.Created, took, st.NewBytes)
	log.Info("scheduled backup done", "snapshot", m.ID, "duration", took.Round(time.Millisecond).String(), "bytes_added", st.NewBytes, "chunks_added", st.NewChunks)
}

// createOnce is 'backup create' without its output: open the repository
// with the node's write key, snapshot, record erasures.
func (b *backupSchedule) createOnce(ctx context.Context, data string, recips []string) (*backup.Manifest, backup.Stats, error) {
	rst, err := b.s3.storage(ctx, b.repo, true)
	if err != nil {
		return nil, backup.Stats{}, err
	}
	r, err := openRepoIn(data, rst, recips, "", io.Discard)
	if err != nil {
		return nil, backup.Stats{}, err
	}
	m, st, err := createSnapshot(ctx, data, r)
	if err != nil {
		return nil, st, err
	}
	if err := recordErasures(ctx, data, rst, io.Discard); err != nil {
		return nil, st, err
	}
	return m, st, nil
}

// newestInRepo reads the time of the repository's newest good snapshot
// with the node's write key, so a restarted server knows its age.
func (b *backupSchedule) newestInRepo(ctx context.Context, data string) (time.Time, bool) {
	rst, err := b.s3.storage(ctx, b.repo, false)
	if err != nil {
		return time.Time{}, false
	}
	k, _ := findWriteKey(data, rst)
	if k == nil {
		return time.Time{}, false
	}
	id, err := k.ServerIdentity()
	if err != nil {
		return time.Time{}, false
	}
	rd, err := backup.OpenReaderIn(rst, []age.Identity{id})
	if err != nil {
		return time.Time{}, false
	}
	m, err := rd.Latest()
	if err != nil {
		return time.Time{}, false
	}
	return m.Created, true
}

// watchOverdue logs at ERROR when the newest good backup becomes older
// than the limit, and at INFO when it is back within it.
func (b *backupSchedule) watchOverdue(ctx context.Context, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	period := min(b.every, time.Minute)
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		was := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			age, over := b.status.age(b.now())
			switch {
			case over && !was:
				log.Error("ALERT: the newest good backup is older than the limit", "age", age.Round(time.Second).String(), "limit", b.maxAge.String(),
					"hint", "see the failures logged by the backup schedule and docs/backup.md (Schedules and retention)")
			case !over && was:
				log.Info("the newest good backup is within the limit again", "age", age.Round(time.Second).String())
			}
			was = over
		}
	}()
	return func() { cancel(); <-done }
}

// errText is the one-line message of err (a CLI error's message, without
// its hint). The messages name paths and repositories, never secrets.
func errText(err error) string {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.msg
	}
	return err.Error()
}

// backupStatus is what /metrics says of the schedule.
type backupStatus struct {
	mu                       sync.Mutex
	started, newest          time.Time
	lastAttempt, lastSuccess time.Time
	lastDuration             time.Duration
	failures                 uint64
	bytesAdded               int64
	maxAge                   time.Duration
}

func (s *backupStatus) start(t time.Time) { s.mu.Lock(); s.started = t; s.mu.Unlock() }

func (s *backupStatus) sawSnapshot(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.After(s.newest) {
		s.newest = t
	}
}

func (s *backupStatus) newestTime() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.newest }

func (s *backupStatus) attempted(t time.Time) { s.mu.Lock(); s.lastAttempt = t; s.mu.Unlock() }

func (s *backupStatus) failed(took time.Duration) {
	s.mu.Lock()
	s.failures++
	s.lastDuration = took
	s.mu.Unlock()
}

func (s *backupStatus) succeeded(created time.Time, took time.Duration, added int64) {
	s.mu.Lock()
	s.lastSuccess, s.lastDuration, s.bytesAdded = created, took, added
	if created.After(s.newest) {
		s.newest = created
	}
	s.mu.Unlock()
}

// age is how old the newest good backup is at now (or, when none is
// known, how long the schedule has run without one) and whether that is
// over the limit.
func (s *backupStatus) age(now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.newest
	if ref.IsZero() {
		ref = s.started
	}
	if ref.IsZero() {
		return 0, false
	}
	a := now.Sub(ref)
	return a, a > s.maxAge
}

var (
	descLastSuccess = prometheus.NewDesc("phivault_backup_last_success_timestamp_seconds", "Unix time of the last scheduled backup that succeeded (its snapshot time); 0: none since start.", nil, nil)
	descLastAttempt = prometheus.NewDesc("phivault_backup_last_attempt_timestamp_seconds", "Unix time the last scheduled backup started; 0: none since start.", nil, nil)
	descDuration    = prometheus.NewDesc("phivault_backup_last_duration_seconds", "How long the last scheduled backup took, success or failure.", nil, nil)
	descFailures    = prometheus.NewDesc("phivault_backup_failures_total", "Scheduled backups that failed.", nil, nil)
	descAge         = prometheus.NewDesc("phivault_backup_newest_age_seconds", "Age of the newest good backup in the repository at scrape time (when none is known, time since the schedule started).", nil, nil)
	descBytesAdded  = prometheus.NewDesc("phivault_backup_bytes_added", "Plaintext bytes of new chunks the last successful backup added.", nil, nil)
	descOverdue     = prometheus.NewDesc("phivault_backup_overdue", "1 when the newest good backup is older than --backup-max-age, else 0.", nil, nil)
	descMaxAge      = prometheus.NewDesc("phivault_backup_max_age_seconds", "The limit --backup-max-age.", nil, nil)
)

// backupCollector exports a schedule's status, computed at scrape time.
type backupCollector struct{ b *backupSchedule }

var _ prometheus.Collector = backupCollector{}

func (c backupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastSuccess, descLastAttempt, descDuration, descFailures, descAge, descBytesAdded, descOverdue, descMaxAge} {
		ch <- d
	}
}

func (c backupCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.b.status
	age, over := s.age(c.b.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	overdue := 0.0
	if over {
		overdue = 1
	}
	g := prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(descLastSuccess, g, unix(s.lastSuccess))
	ch <- prometheus.MustNewConstMetric(descLastAttempt, g, unix(s.lastAttempt))
	ch <- prometheus.MustNewConstMetric(descDuration, g, s.lastDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.failures))
	ch <- prometheus.MustNewConstMetric(descAge, g, age.Seconds())
	ch <- prometheus.MustNewConstMetric(descBytesAdded, g, float64(s.bytesAdded))
	ch <- prometheus.MustNewConstMetric(descOverdue, g, overdue)
	ch <- prometheus.MustNewConstMetric(descMaxAge, g, s.maxAge.Seconds())
}

// registerMetrics exports the schedule's status when a schedule is set.
func (b *backupSchedule) registerMetrics(reg prometheus.Registerer) {
	if b != nil && b.repo != "" {
		reg.MustRegister(backupCollector{b})
	}
}
