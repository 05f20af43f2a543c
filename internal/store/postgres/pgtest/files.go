package pgtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ServerFiles returns the throwaway server's data directory (the files a
// stolen disk would show) and the directory of its binaries (pg_dump of
// the same major version). Tests that need them skip when the server was
// given by PHIVAULT_TEST_PG, whose files are not ours to read.
func ServerFiles(t testing.TB) (dataDir, bin string) {
	t.Helper()
	AdminDSN(t)
	if dir == "" {
		t.Skipf("pgtest: the files of the server from %s are not reachable by tests", EnvDSN)
	}
	return filepath.Join(dir, "data"), binDir
}

// Run runs one of the server's programs (pg_dump, psql) as the user the
// server runs as and returns its standard output.
func Run(t testing.TB, program string, args ...string) []byte {
	t.Helper()
	_, bin := ServerFiles(t)
	argv := append(append(append([]string(nil), run...), filepath.Join(bin, program)), args...)
	out, err := execOutput(argv)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", program, err)
	}
	return out
}

func execOutput(argv []string) ([]byte, error) {
	var stderr strings.Builder
	c := exec.Command(argv[0], argv[1:]...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
