package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneGC: a server whose operator set no GOGC collects at 400% and
// keeps under a soft limit of half its memory; one whose operator set GOGC
// or GOMEMLIMIT keeps the operator's values.
func TestTuneGC(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		was, had := os.LookupEnv(env)
		t.Cleanup(func() {
			if had {
				os.Setenv(env, was)
			} else {
				os.Unsetenv(env)
			}
		})
		os.Unsetenv(env)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	tuneGC()
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Fatalf("without GOGC: %d%%, want %d%%", got, serveGCPercent)
	}
	want := servedMemoryLimit()
	if _, err := os.Stat("/proc/meminfo"); err == nil && want < 64<<20 {
		t.Fatalf("memory limit %d bytes on a machine with /proc/meminfo", want)
	}
	if want > 0 {
		if got := debug.SetMemoryLimit(math.MaxInt64); got != want {
			t.Fatalf("without GOMEMLIMIT: limit %d, want %d", got, want)
		}
	}

	os.Setenv("GOGC", "50")
	os.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(50)        // what the runtime took from GOGC at start
	debug.SetMemoryLimit(1 << 30) // and from GOMEMLIMIT
	tuneGC()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("with GOGC=50: %d%%, want the operator's 50%%", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != 1<<30 {
		t.Fatalf("with GOMEMLIMIT=1GiB: limit %d, want the operator's", got)
	}
}
