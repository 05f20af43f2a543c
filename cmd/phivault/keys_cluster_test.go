package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// TestKeysRotateSharedStore: on a PostgreSQL store, which other nodes may
// share with their own copies of the KEK, 'keys rotate' refuses (and adds
// no version) until the operator confirms with --nodes-stopped that no
// other node runs; then it rotates.
func TestKeysRotateSharedStore(t *testing.T) {
	dsn := pgtest.DSN(t) // skips without PostgreSQL, fails when CI=true
	pgStop.Do(func() { atExit(pgtest.Stop) })
	dir := filepath.Join(t.TempDir(), "pg")
	var out, errb bytes.Buffer
	if code := run([]string{"init", "--data", dir, "--dev-key", "--db", dsn}, &out, &errb); code != 0 {
		t.Fatalf("init --db: exit %d: %s", code, errb.String())
	}
	status := func() string {
		t.Helper()
		var o, e bytes.Buffer
		if code := run([]string{"keys", "status", "--data", dir}, &o, &e); code != 0 {
			t.Fatalf("keys status: exit %d: %s", code, e.String())
		}
		return o.String()
	}
	before := status()
	out.Reset()
	errb.Reset()
	code := run([]string{"keys", "rotate", "--data", dir}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "--nodes-stopped") {
		t.Fatalf("keys rotate on a PostgreSQL store without --nodes-stopped: exit %d, %q; want a refusal naming --nodes-stopped", code, errb.String())
	}
	if after := status(); after != before {
		t.Fatalf("a refused rotation changed the keys:\nbefore: %s\nafter: %s", before, after)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"keys", "rotate", "--data", dir, "--nodes-stopped"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "KEK version 2 created") {
		t.Fatalf("keys rotate --nodes-stopped: exit %d: %s %s", code, out.String(), errb.String())
	}
}
