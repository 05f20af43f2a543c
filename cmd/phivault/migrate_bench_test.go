package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/synth"
)

// BenchmarkMigrate moves one embedded store (20 demo patients) into a new
// PostgreSQL schema per iteration and reports, side by side, the copy and
// the verification that follows it: µs per version for each, and their
// ratio (what verifying costs relative to copying).
func BenchmarkMigrate(b *testing.B) {
	admin := pgtest.AdminDSN(b)
	pgStop.Do(func() { atExit(pgtest.Stop) })
	dir := b.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		b.Fatal(err)
	}
	if _, _, err := loadDemo(dir, synth.Options{Seed: 7, Patients: 20}, io.Discard); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	src, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer src.close()
	verifier, srcAudit, err := verifySourceAudit(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	var copyDur, verifyDur time.Duration
	var versions int64
	for b.Loop() {
		dsn := pgtest.SchemaIn(b, admin)
		pool, err := connectPG(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		if err := postgres.Migrate(ctx, pool); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		counts, err := copyStore(ctx, dir, pool)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := verifyTarget(ctx, src, dsn, pool, counts, verifier, srcAudit, io.Discard); err != nil {
			b.Fatal(err)
		}
		copyDur += t1.Sub(t0)
		verifyDur += time.Since(t1)
		versions += counts["versions"]
		pool.Close()
	}
	b.ReportMetric(float64(copyDur.Microseconds())/float64(versions), "copy-µs/version")
	b.ReportMetric(float64(verifyDur.Microseconds())/float64(versions), "verify-µs/version")
	b.ReportMetric(float64(verifyDur)/float64(copyDur), "verify/copy")
}
