package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterPolicyPropagation: a policy set installed on node 0 of a
// cluster (through its admin socket) is in force on node 1 within 5 s -
// a Patient search the default allows is refused there (403) - and a reset
// on node 0 lets node 1 allow it again within 5 s. A set installed on a
// stopped node is taken up by the serving ones the same way.
func TestClusterPolicyPropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: server processes; skipped under -short")
	}
	c := newCluster(t, 2)
	ctx := context.Background()
	status := func(node int) int {
		_, s, _, body, err := c.do(ctx, node, "GET", "/fhir/Patient?_count=1", nil)
		if err != nil {
			t.Fatalf("node %d: %v", node, err)
		}
		if s != 200 && s != 403 {
			t.Fatalf("node %d: status %d: %s", node, s, body)
		}
		return s
	}
	// within waits until node answers want, for at most 5 s.
	within := func(node, want int, what string, since time.Time) {
		t.Helper()
		for status(node) != want {
			if time.Since(since) > 5*time.Second {
				t.Fatalf("%s: node %d does not answer %d after 5s", what, node, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s: node %d answered %d %v later", what, node, want, time.Since(since).Round(time.Millisecond))
	}
	for node := range 2 {
		if s := status(node); s != 200 {
			t.Fatalf("node %d refuses a Patient search under the default set: %d", node, s)
		}
	}
	deny := filepath.Join(t.TempDir(), "deny.cedar")
	if err := os.WriteFile(deny, noPatientSearch(), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := c.cli("", "policy", "set", "--data", c.dirs[0], deny)
	if err != nil || !strings.Contains(out, "the running server uses the new policy set") {
		t.Fatalf("policy set on node 0: %v\n%s", err, out)
	}
	changed := time.Now()
	if s := status(0); s != 403 {
		t.Errorf("policy set: node 0 answers %d, want 403 at once", s)
	}
	within(1, 403, "policy set on node 0", changed)

	if out, err := c.cli("", "policy", "reset", "--data", c.dirs[0]); err != nil {
		t.Fatalf("policy reset on node 0: %v\n%s", err, out)
	}
	changed = time.Now()
	if s := status(0); s != 200 {
		t.Errorf("policy reset: node 0 answers %d, want 200 at once", s)
	}
	within(1, 200, "policy reset on node 0", changed)

	// Offline on a stopped node: the serving node takes it up too.
	c.stop(0)
	if out, err := c.cli("", "policy", "set", "--data", c.dirs[0], deny); err != nil {
		t.Fatalf("policy set on stopped node 0: %v\n%s", err, out)
	}
	within(1, 403, "policy set on stopped node 0", time.Now())
}
