package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCluster runs three nodes on one PostgreSQL database under concurrent
// load. Concurrent If-Match updates of one resource through different
// nodes have exactly one winner per version and 412 for the rest; exactly
// one node leads; kill -9 of the leader makes another node take over and
// sign a checkpoint covering every leaf within 10 seconds; and the cluster's
// audit log verifies as one tree holding every answered request exactly
// once.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: three server processes; skipped under -short")
	}
	c := newCluster(t, 3)
	ctx := context.Background()
	leader, _ := c.waitLeader(make([]int, 3), 10*time.Second)
	time.Sleep(2 * time.Second) // followers campaign at least once more
	if n := c.leadCounts(); n[0]+n[1]+n[2] != 1 {
		t.Fatalf("leader lines per node %v, want exactly one leader", n)
	}

	for i, n := range c.nodes {
		resp, err := c.http.Get(n.url + "/readyz")
		if err != nil {
			t.Fatalf("node %d: /readyz: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("node %d: /readyz answered %d, want 200", i, resp.StatusCode)
		}
	}

	var mu sync.Mutex
	answered := map[string]int{} // User-Agent -> status
	note := func(agent string, status int) {
		mu.Lock()
		answered[agent] = status
		mu.Unlock()
	}
	agent, status, etag, body, err := c.do(ctx, 0, "POST", "/fhir/Patient", patientBody("", "created"))
	if err != nil || status != 201 {
		t.Fatalf("create: %d %v %s", status, err, body)
	}
	note(agent, status)
	var created struct{ ID string }
	json.Unmarshal(body, &created)
	if created.ID == "" || etag != `W/"1"` {
		t.Fatalf("create answered id %q, ETag %q", created.ID, etag)
	}
	path := "/fhir/Patient/" + created.ID

	// Workers on every node race to make each next version.
	const workers, last = 12, 40
	winners := map[int][]string{} // version -> the markers that won it
	conflicts := 0
	start := time.Now()
	var wg sync.WaitGroup
	for g := range workers {
		node := g % 3
		wg.Go(func() {
			for try := 0; ; try++ {
				agent, status, etag, _, err := c.do(ctx, node, "GET", path, nil)
				if err != nil || status != 200 {
					t.Errorf("node %d: read: %d %v", node, status, err)
					return
				}
				note(agent, status)
				cur, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(etag, `W/"`), `"`))
				if err != nil {
					t.Errorf("node %d: ETag %q", node, etag)
					return
				}
				if cur >= last {
					return
				}
				marker := fmt.Sprintf("w%d-t%d", g, try)
				agent, status, etag, body, err := c.do(ctx, node, "PUT", path, patientBody(created.ID, marker), "If-Match", fmt.Sprintf(`W/"%d"`, cur))
				if err != nil {
					t.Errorf("node %d: update: %v", node, err)
					return
				}
				note(agent, status)
				mu.Lock()
				switch status {
				case 200:
					if etag != fmt.Sprintf(`W/"%d"`, cur+1) {
						t.Errorf("node %d: update of version %d answered ETag %s", node, cur, etag)
					}
					winners[cur+1] = append(winners[cur+1], marker)
				case 412:
					conflicts++
				default:
					t.Errorf("node %d: update: status %d, want 200 or 412: %s", node, status, body)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	for v := 2; v <= last; v++ {
		if len(winners[v]) != 1 {
			t.Errorf("version %d: winners %v, want exactly one", v, winners[v])
		}
	}
	if conflicts == 0 {
		t.Error("no update lost a race (412): the workers did not contend")
	}
	for i := range 3 {
		agent, status, etag, body, err := c.do(ctx, i, "GET", path, nil)
		note(agent, status)
		if err != nil || etag != fmt.Sprintf(`W/"%d"`, last) || !strings.Contains(string(body), winners[last][0]) {
			t.Errorf("node %d sees %s (%v), want version %d by %v", i, etag, err, last, winners[last])
		}
	}
	t.Logf("%d versions, %d conflicts (412) over 3 nodes in %v; leader: node %d", last-1, conflicts, elapsed, leader)

	// kill -9 of the leader: another node leads and signs within 10 s.
	before := c.leadCounts()
	killed := time.Now()
	c.kill9(leader)
	next, tookAt := c.waitLeader(before, 10*time.Second)
	for i := range 3 {
		if i != leader {
			agent, status, _, _, err := c.do(ctx, i, "GET", path, nil)
			if err != nil || status != 200 {
				t.Fatalf("node %d after the leader died: %d %v", i, status, err)
			}
			note(agent, status)
		}
	}
	leaves := c.auditSize()
	signed := c.waitSigned(next, leaves, killed.Add(10*time.Second), note)
	if signed < leaves {
		t.Fatalf("10s after kill -9 of the leader the latest checkpoint covers %d of %d leaves", signed, leaves)
	}
	t.Logf("kill -9 of the leader: node %d led after %v; a checkpoint covered all %d leaves after %v",
		next, tookAt.Sub(killed).Round(time.Millisecond), leaves, time.Since(killed).Round(time.Millisecond))

	// The cluster's audit log verifies as one tree and holds every
	// answered request exactly once.
	for i := range 3 {
		if i != leader {
			c.stop(i)
		}
	}
	out, err := c.cli("", "audit", "verify", "--data", c.dirs[0])
	if err != nil || !strings.Contains(out, "OK: the audit log verifies") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`leaves: (\d+)\n.*\nleaves covered by a signed checkpoint: (\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] {
		t.Errorf("audit verify: not every leaf is covered by a signed checkpoint after a clean stop:\n%s", out)
	}
	export, err := c.cli("", "audit", "export", "--data", c.dirs[1])
	if err != nil {
		t.Fatalf("audit export: %v\n%s", err, export)
	}
	seen := agentsIn(export)
	for agent, status := range answered {
		if seen[agent] != 1 {
			t.Errorf("request %s (answered %d) is in the audit log %d times, want exactly once", agent, status, seen[agent])
		}
	}
	for agent, n := range seen {
		if n > 1 {
			t.Errorf("request %s is in the audit log %d times", agent, n)
		}
	}
	t.Logf("%d answered requests, each in the audit log once; %s", len(answered), strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
}

// TestClusterRevocation: disabling a user, or revoking their sessions and
// tokens, on one node makes every other node refuse their token within 5
// seconds (acceptance 5), and the node that made the change at once.
func TestClusterRevocation(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: server processes; skipped under -short")
	}
	c := newCluster(t, 2)
	ctx := context.Background()
	if out, err := c.cli("a long enough password 1\n", "user", "add", "--data", c.dirs[0], "alice", "--role", "physician", "--password-stdin"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	mint := func() string {
		out, err := c.cli("", "token", "--data", c.dirs[0], "--user", "alice", "--role", "physician")
		if err != nil {
			t.Fatalf("token: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	status := func(node int, tok string) int {
		_, s, _, body, err := c.do(ctx, node, "GET", "/fhir/Patient?_count=1", nil, "Authorization", "Bearer "+tok)
		if err != nil {
			t.Fatalf("node %d: %v", node, err)
		}
		if s != 401 && s != 200 && s != 403 {
			t.Fatalf("node %d: status %d: %s", node, s, body)
		}
		return s
	}
	for _, change := range [][]string{
		{"user", "revoke", "--data", c.dirs[0], "alice"},
		{"user", "disable", "--data", c.dirs[0], "alice", "--reason", "left the hospital"},
	} {
		tok := mint()
		for node := range 2 {
			if s := status(node, tok); s == 401 { // also fills node's account cache
				t.Fatalf("%s: node %d refuses the new token before the change", change[1], node)
			}
		}
		if out, err := c.cli("", change...); err != nil {
			t.Fatalf("%v: %v\n%s", change, err, out)
		}
		changed := time.Now()
		if s := status(0, tok); s != 401 {
			t.Errorf("%s: the node that made the change answers %d, want 401 at once", change[1], s)
		}
		var after time.Duration
		for {
			if status(1, tok) == 401 {
				after = time.Since(changed)
				break
			}
			if time.Since(changed) > 5*time.Second {
				t.Fatalf("%s on node 0: node 1 still accepts the token after 5s", change[1])
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s on node 0: node 1 refused the token %v later", change[1], after.Round(time.Millisecond))
	}
}
