package pgtest

import (
	"path/filepath"
	"testing"
	"time"
)

// Restart stops the throwaway server (pg_ctl stop -m fast: every session
// is cut, as in a failover or a maintenance restart), keeps it down for
// down, starts it again and waits until it accepts connections. Tests
// that need it skip when the server was given by PHIVAULT_TEST_PG, which
// they must not restart.
func Restart(t testing.TB, down time.Duration) {
	t.Helper()
	AdminDSN(t)
	if dir == "" {
		t.Skipf("pgtest: the server from %s is not restarted by tests", EnvDSN)
	}
	data := filepath.Join(dir, "data")
	if err := command(filepath.Join(binDir, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"); err != nil {
		t.Fatalf("pgtest: stop: %v", err)
	}
	time.Sleep(down)
	// pg_ctl start reuses the options of the first start (postmaster.opts
	// is only read by restart), so give them again.
	if err := command(filepath.Join(binDir, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w",
		"-o", "-k "+dir+" -p "+socketPort+" -c listen_addresses=''", "start"); err != nil {
		t.Fatalf("pgtest: start: %v", err)
	}
}
