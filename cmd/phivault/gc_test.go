package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneGC: a server whose operator set no GOGC collects at 200%; one
// whose operator set GOGC keeps the operator's target.
func TestTuneGC(t *testing.T) {
	was, had := os.LookupEnv("GOGC")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Cleanup(func() {
		if had {
			os.Setenv("GOGC", was)
		} else {
			os.Unsetenv("GOGC")
		}
	})
	os.Unsetenv("GOGC")
	tuneGC()
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Fatalf("without GOGC: %d%%, want %d%%", got, serveGCPercent)
	}
	os.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // what the runtime took from GOGC at start
	tuneGC()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("with GOGC=50: %d%%, want the operator's 50%%", got)
	}
}
