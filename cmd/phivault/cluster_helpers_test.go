package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// leaderLine is what a node logs when it starts the cluster jobs.
const leaderLine = "cluster jobs started on this node (leader)"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// clusterBinary builds the phivault binary once for the tests of this
// package run.
func clusterBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "phivault-bin-")
		if err != nil {
			binErr = err
			return
		}
		atExit(func() { os.RemoveAll(dir) })
		binPath = filepath.Join(dir, "phivault")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cluster is several 'phivault serve' processes, each with its own data
// directory, sharing one PostgreSQL schema.
type cluster struct {
	t      *testing.T
	bin    string
	dsn    string
	dirs   []string
	nodes  []*clusterNode
	links  []*pgtest.Link // each node's link to the database, with newLinkedCluster
	shares []string       // the key file's shares, with newSealedCluster: start unseals with three
	token  string         // the bootstrap operator token (valid on every node)
	http   *http.Client
	agents atomic.Int64 // numbers each request's User-Agent
}

type clusterNode struct {
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
	done chan struct{}
}

// newCluster builds the binary, creates the first node's directory on a
// new PostgreSQL schema and copies it (key file, store.json, TLS
// certificate, bootstrap token) for the others, as an operator adding
// nodes would.
func newCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return buildCluster(t, size, clusterOptions{})
}

// clusterOptions vary buildCluster.
type clusterOptions struct {
	linked bool // each node reaches the database through a pgtest.Link
	sealed bool // the key file is split into shares (3 of 5) before it is copied
}

// newLinkedCluster is newCluster with each node reaching the database
// through a pgtest.Link of its own (c.links), so that a test can cut one
// node off.
func newLinkedCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return buildCluster(t, size, clusterOptions{linked: true})
}

// newSealedCluster is newCluster with the key file split into shares
// (c.shares): each node starts sealed and start unseals it.
func newSealedCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return buildCluster(t, size, clusterOptions{sealed: true})
}

func buildCluster(t *testing.T, size int, o clusterOptions) *cluster {
	t.Helper()
	dsn := pgtest.DSN(t) // skips without PostgreSQL, fails when CI=true
	pgStop.Do(func() { atExit(pgtest.Stop) })
	tmp := t.TempDir()
	c := &cluster{t: t, bin: clusterBinary(t), dsn: dsn}
	first := filepath.Join(tmp, "node0")
	if out, err := exec.Command(c.bin, "init", "--data", first, "--dev-key", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	c.dirs = append(c.dirs, first)
	if o.sealed {
		c.shares = splitDir(t, first)
	}
	for i := 1; i < size; i++ {
		dir := filepath.Join(tmp, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(filepath.Join(dir, tlsDirName), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{keyFileName, storeFileName, bootstrapName, filepath.Join(tlsDirName, "cert.pem"), filepath.Join(tlsDirName, "key.pem")} {
			b, err := os.ReadFile(filepath.Join(first, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c.dirs = append(c.dirs, dir)
	}
	if o.linked {
		for _, dir := range c.dirs {
			link, via := pgtest.NewLink(t, dsn)
			c.links = append(c.links, link)
			if err := writeStoreConfig(dir, via); err != nil {
				t.Fatal(err)
			}
		}
	}
	tok, err := os.ReadFile(filepath.Join(first, bootstrapName))
	if err != nil {
		t.Fatal(err)
	}
	c.token = strings.TrimSpace(string(tok))
	pem, err := os.ReadFile(filepath.Join(first, tlsDirName, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				n.cmd.Process.Kill()
				<-n.done
			}
		}
		c.http.CloseIdleConnections()
	})
	for i := range c.dirs {
		c.nodes = append(c.nodes, c.start(i))
	}
	return c
}

// start runs node i's server and waits until it serves.
func (c *cluster) start(i int) *clusterNode {
	c.t.Helper()
	n := &clusterNode{cmd: exec.Command(c.bin, "serve", "--data", c.dirs[i], "--listen", "127.0.0.1:0", "--log-level", "info"),
		logs: &lockedBuffer{}, done: make(chan struct{})}
	n.cmd.Stderr = n.logs
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "phivault is serving FHIR R4 at "); ok {
				urls <- strings.TrimSuffix(u, "/fhir")
			}
		}
		n.cmd.Wait()
		close(n.done)
	}()
	if c.shares != nil {
		go c.unsealAtStart(i, n.done)
	}
	select {
	case n.url = <-urls:
	case <-n.done:
		c.t.Fatalf("node %d exited before serving:\n%s", i, string(n.logs.Bytes()))
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		c.t.Fatalf("node %d did not start in 60s:\n%s", i, string(n.logs.Bytes()))
	}
	return n
}

// unsealAtStart gives node i three shares through its admin socket, once
// it answers, until done closes or a minute passes.
func (c *cluster) unsealAtStart(i int, done <-chan struct{}) {
	deadline := time.Now().Add(time.Minute)
	for k := 0; k < 3 && time.Now().Before(deadline); {
		if _, err := c.cli(c.shares[k]+"\n", "unseal", "--data", c.dirs[i]); err == nil {
			k++
			continue
		}
		select {
		case <-done:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaders returns the running nodes that have logged taking the lead
// since after (a count of earlier such lines per node, from leadCounts).
func (c *cluster) leadCounts() []int {
	counts := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		if n != nil {
			counts[i] = strings.Count(string(n.logs.Bytes()), leaderLine)
		}
	}
	return counts
}

// waitLeader waits up to d for a running node, other than the ones whose
// count of leader lines is still before[i], to take the lead, and returns
// its index and when it was seen.
func (c *cluster) waitLeader(before []int, d time.Duration) (int, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		now := c.leadCounts()
		var took []int
		for i := range now {
			if now[i] > before[i] {
				took = append(took, i)
			}
		}
		switch {
		case len(took) == 1:
			return took[0], time.Now()
		case len(took) > 1:
			c.t.Fatalf("nodes %v all took the lead", took)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no node took the lead within %v", d)
	return -1, time.Time{}
}

// do sends one request to node i as the operator with a User-Agent of its
// own (returned: the audit event names it) and returns the status, ETag
// and body; err is a transport error.
func (c *cluster) do(ctx context.Context, i int, method, path string, body []byte, hdr ...string) (agent string, status int, etag string, b []byte, err error) {
	agent = fmt.Sprintf("phivault-cluster-test/%d", c.agents.Add(1))
	req, err := http.NewRequestWithContext(ctx, method, c.nodes[i].url+path, bytes.NewReader(body))
	if err != nil {
		return agent, 0, "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", agent)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k := 0; k+1 < len(hdr); k += 2 {
		req.Header.Set(hdr[k], hdr[k+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return agent, 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err = io.ReadAll(resp.Body)
	return agent, resp.StatusCode, resp.Header.Get("ETag"), b, err
}

// until200 sends the request to node i every 100 ms until it answers 200
// or deadline passes (then the last status or transport error); note sees
// every answered request.
func (c *cluster) until200(ctx context.Context, i int, method, path string, body []byte, deadline time.Time, note func(agent string, status int)) error {
	for {
		agent, status, _, _, err := c.do(ctx, i, method, path, body)
		if err == nil {
			note(agent, status)
			if status == 200 {
				return nil
			}
			err = fmt.Errorf("answered %d", status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cli runs the binary with args (and stdin) and returns its output.
func (c *cluster) cli(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stop stops node i with SIGINT (a clean shutdown) and waits for it.
func (c *cluster) stop(i int) {
	c.t.Helper()
	n := c.nodes[i]
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		c.t.Errorf("node %d did not stop on SIGINT within 60s", i)
	}
	c.nodes[i] = nil
}

// kill9 kills node i with SIGKILL.
func (c *cluster) kill9(i int) {
	n := c.nodes[i]
	n.cmd.Process.Kill()
	<-n.done
	c.nodes[i] = nil
}

// logErrors logs the lines of the running nodes' logs at level ERROR.
func (c *cluster) logErrors() {
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		for line := range strings.Lines(string(n.logs.Bytes())) {
			if strings.Contains(line, `"level":"ERROR"`) {
				c.t.Logf("node %d: %s", i, strings.TrimSpace(line))
			}
		}
	}
}

// auditSize reads the size of the cluster's audit log from the database.
func (c *cluster) auditSize() int64 {
	c.t.Helper()
	db, err := postgres.Open(context.Background(), c.dsn, postgres.WithoutMigrate(), postgres.WithReaders(1))
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.View(context.Background(), func(r store.Reader) error { n, err = r.AuditSize(); return err }); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// waitSigned asks node for the latest checkpoint until it covers want
// leaves or deadline passes, and returns the size it covers; each answered
// request is passed to note.
func (c *cluster) waitSigned(node int, want int64, deadline time.Time, note func(agent string, status int)) int64 {
	var signed int64
	for ; time.Now().Before(deadline) && signed < want; time.Sleep(200 * time.Millisecond) {
		agent, status, _, body, err := c.do(context.Background(), node, "GET", "/fhir/_audit/checkpoint", nil)
		if err == nil {
			note(agent, status)
		}
		if err == nil && status == 200 {
			signed = checkpointSize(c.t, body)
		}
	}
	return signed
}

// expectAuditedOnce exports the cluster's audit log through the stopped
// node whose directory is dir and requires every request answered with
// success (answered: User-Agent -> status) in it exactly once, and none
// more than once.
func (c *cluster) expectAuditedOnce(dir string, answered map[string]int) {
	c.t.Helper()
	export, err := c.cli("", "audit", "export", "--data", dir)
	if err != nil {
		c.t.Fatalf("audit export: %v\n%s", err, export)
	}
	seen := agentsIn(export)
	for agent, status := range answered {
		switch {
		case status < 300 && seen[agent] != 1:
			c.t.Errorf("request %s answered %d is in the audit log %d times, want exactly once", agent, status, seen[agent])
		case seen[agent] > 1:
			c.t.Errorf("request %s answered %d is in the audit log %d times", agent, status, seen[agent])
		}
	}
}

// agentsIn counts, in an 'audit export', the events of each test request
// (by the User-Agent unique to it).
func agentsIn(export string) map[string]int {
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(export))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var ev struct {
			Extension []struct{ URL, ValueString string }
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		for _, e := range ev.Extension {
			if e.URL == "urn:phivault:user-agent" && strings.HasPrefix(e.ValueString, "phivault-cluster-test/") {
				seen[e.ValueString]++
			}
		}
	}
	return seen
}

// checkpointSize reads the tree size from a signed checkpoint (origin,
// size, root, blank line, signatures).
func checkpointSize(t *testing.T, note []byte) int64 {
	t.Helper()
	lines := strings.SplitN(string(note), "\n", 3)
	if len(lines) < 3 {
		t.Fatalf("checkpoint %q", note)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q", lines[1])
	}
	return n
}
