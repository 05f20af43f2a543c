package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// TestClusterDatabaseRestart restarts PostgreSQL under two nodes serving
// reads and updates. During the outage requests fail with 503 and return
// nothing; the nodes reconnect by themselves and serve again; a leader
// signs checkpoints again; and every request answered with data or a
// change is in the audit log exactly once (none succeeded without audit).
func TestClusterDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: server processes and a database restart; skipped under -short")
	}
	c := newCluster(t, 2)
	c.waitLeader(make([]int, 2), 10*time.Second)
	ctx := context.Background()
	var mu sync.Mutex
	answered := map[string]int{}
	statuses := map[int]int{}
	var paths []string // one patient per worker: no write conflicts between them
	for range 4 {
		agent, status, _, body, err := c.do(ctx, 0, "POST", "/fhir/Patient", patientBody("", "before"))
		if err != nil || status != 201 {
			t.Fatalf("create: %d %v %s", status, err, body)
		}
		answered[agent] = status
		var created struct{ ID string }
		json.Unmarshal(body, &created)
		paths = append(paths, "/fhir/Patient/"+created.ID)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		node, path := g%2, paths[g]
		id := strings.TrimPrefix(path, "/fhir/Patient/")
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				var agent string
				var status int
				var body []byte
				var err error
				if i%2 == 0 {
					agent, status, _, body, err = c.do(ctx, node, "GET", path, nil)
				} else {
					agent, status, _, body, err = c.do(ctx, node, "PUT", path, patientBody(id, fmt.Sprintf("g%d-%d", g, i)))
				}
				if err != nil {
					t.Errorf("node %d: transport error: %v", node, err)
					return
				}
				mu.Lock()
				answered[agent] = status
				statuses[status]++
				mu.Unlock()
				switch status {
				case 200:
				case 503:
					if strings.Contains(string(body), id) || strings.Contains(string(body), "family") {
						t.Errorf("node %d: a 503 carries data: %s", node, body)
					}
					time.Sleep(50 * time.Millisecond)
				default:
					t.Errorf("node %d: status %d during the restart, want 200 or 503: %s", node, status, body)
				}
			}
		})
	}
	time.Sleep(time.Second)
	restarted := time.Now()
	pgtest.Restart(t, 4*time.Second)
	t.Logf("PostgreSQL down and up again in %v", time.Since(restarted).Round(time.Millisecond))
	// Both nodes serve again by themselves.
	for node := range 2 {
		for {
			agent, status, _, _, err := c.do(ctx, node, "GET", paths[0], nil)
			if err == nil {
				mu.Lock()
				answered[agent] = status
				mu.Unlock()
			}
			if err == nil && status == 200 {
				break
			}
			if time.Since(restarted) > 30*time.Second {
				t.Fatalf("node %d does not serve 30s after the restart: %d %v", node, status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	back := time.Since(restarted)
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	t.Logf("both nodes served again %v after the restart began; statuses %v", back.Round(time.Millisecond), statuses)

	// A leader signs checkpoints again: one covers every leaf.
	note := func(agent string, status int) { mu.Lock(); answered[agent] = status; mu.Unlock() }
	leaves := c.auditSize()
	if signed := c.waitSigned(1, leaves, time.Now().Add(15*time.Second), note); signed < leaves {
		t.Errorf("after the restart no checkpoint covers the %d leaves within 15s (latest: %d)", leaves, signed)
	}
	for i := range 2 {
		c.stop(i)
	}
	out, err := c.cli("", "audit", "verify", "--data", c.dirs[0])
	if err != nil || !strings.Contains(out, "OK: the audit log verifies") {
		t.Fatalf("audit verify after the restart: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`leaves: (\d+)\n.*\nleaves covered by a signed checkpoint: (\d+)`).FindStringSubmatch(out); m == nil || m[1] != m[2] {
		t.Errorf("audit verify: not every leaf is covered by a signed checkpoint after a clean stop:\n%s", out)
	}
	export, err := c.cli("", "audit", "export", "--data", c.dirs[0])
	if err != nil {
		t.Fatalf("audit export: %v\n%s", err, export)
	}
	seen := agentsIn(export)
	for agent, status := range answered {
		switch {
		case status < 300 && seen[agent] != 1:
			t.Errorf("request %s answered %d is in the audit log %d times, want exactly once", agent, status, seen[agent])
		case seen[agent] > 1:
			t.Errorf("request %s answered %d is in the audit log %d times", agent, status, seen[agent])
		}
	}
	if statuses[503] == 0 {
		t.Error("no request failed with 503 while the database was down: the test did not see the outage")
	}
	t.Logf("%d answered requests; %s", len(answered), strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
}
