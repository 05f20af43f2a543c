package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
)

// TestClusterSeal: an officer who seals one node of a cluster seals every
// node sharing its store, within 5 s (the emergency stop); each node is
// then unsealed on its own with its shares, and a node unsealed after the
// seal stays unsealed. Both seals are in the cluster's audit log.
func TestClusterSeal(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: two sealed server processes; skipped under -short")
	}
	c := newSealedCluster(t, 2)
	ctx := context.Background()
	get := func(node int) int {
		t.Helper()
		_, status, _, _, err := c.do(ctx, node, "GET", "/fhir/Patient?_count=1", nil)
		if err != nil {
			t.Fatalf("node %d: %v", node, err)
		}
		return status
	}
	for node := range 2 {
		if s := get(node); s != 200 {
			t.Fatalf("node %d answers %d after unsealing at start, want 200", node, s)
		}
	}
	if out, err := c.cli("", "seal", "--data", c.dirs[0]); err != nil {
		t.Fatalf("seal node 0: %v\n%s", err, out)
	}
	if s := get(0); s != 503 {
		t.Fatalf("node 0 answers %d after its seal, want 503", s)
	}
	sealed := time.Now()
	for get(1) != 503 {
		if time.Since(sealed) > 5*time.Second {
			t.Fatal("node 1 still serves 5 s after node 0 sealed the cluster")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("node 1 sealed %v after node 0", time.Since(sealed).Round(100*time.Microsecond))

	for k := range 3 {
		if out, err := c.cli(c.shares[k]+"\n", "unseal", "--data", c.dirs[1]); err != nil {
			t.Fatalf("unseal node 1 (share %d): %v\n%s", k, err, out)
		}
	}
	if s := get(1); s != 200 {
		t.Fatalf("node 1 answers %d after its unseal, want 200", s)
	}
	time.Sleep(2*sealPollInterval + time.Second) // past its next checks: the old seal does not seal it again
	if s := get(1); s != 200 {
		t.Fatalf("node 1 answers %d %v after its unseal: the cluster's earlier seal sealed it again", s, 2*sealPollInterval)
	}
	if s := get(0); s != 503 {
		t.Fatalf("node 0 answers %d: unsealing node 1 unsealed it too", s)
	}
	for k := range 3 {
		c.cli(c.shares[k]+"\n", "unseal", "--data", c.dirs[0])
	}
	if s := get(0); s != 200 {
		t.Fatalf("node 0 answers %d after its unseal, want 200", s)
	}
	for i := range 2 {
		c.stop(i)
	}
	// The key file needs its shares offline: read the leaves from the
	// database itself (they hold no patient data).
	db, err := postgres.Open(ctx, c.dsn, postgres.WithoutMigrate(), postgres.WithReaders(1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var log strings.Builder
	err = db.View(ctx, func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return err
		}
		leaves, err := r.AuditLeaves(0, n)
		for _, l := range leaves {
			log.Write(l)
			log.WriteByte('\n')
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), `"key-seal"`); n != 2 {
		t.Errorf("%d key-seal events in the audit log, want 2 (one per node)", n)
	}
	if !strings.Contains(log.String(), "another node sealed the cluster") {
		t.Error("node 1's seal is not recorded as following the cluster's")
	}
}
