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
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	crashRounds  = 20
	crashWriters = 16
)

// ack is one acknowledged (or, while pending, attempted) version.
type ack struct {
	vid    int64
	marker string
}

// crashRes is a resource one writer owns: only that writer changes it, so
// its version numbers are known in advance.
type crashRes struct {
	id      string
	acked   []ack // acknowledged versions, in order
	pending *ack  // an update sent but not answered when the server died
}

func (r *crashRes) last() ack { return r.acked[len(r.acked)-1] }

// TestCrashKill9 kills the real server with SIGKILL at random moments
// during concurrent creates and updates, and checks after each restart
// that every acknowledged write is there with its content and version,
// and that 'phivault check' passes on the directory the crash left.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped under -short")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "phivault")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "data")
	if out, err := exec.Command(bin, "init", "--data", dir, "--dev-key").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	tok, err := os.ReadFile(filepath.Join(dir, bootstrapName))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	pem, err := os.ReadFile(filepath.Join(dir, tlsDirName, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	owned := make([][]*crashRes, crashWriters) // per writer
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	total, landed := 0, int64(0)
	for round := 0; round <= crashRounds; round++ {
		srv := startServer(t, bin, dir)
		c := &crashClient{t: t, base: srv.url, token: token, http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64},
		}}
		c.verify(owned)
		landed += c.landed.Load()
		if round == crashRounds {
			srv.stop(t) // the last round: a clean stop, then the final check
		} else {
			total += c.writeUntilKilled(srv, owned, round, time.Duration(50+rng.IntN(450))*time.Millisecond)
		}
		c.http.CloseIdleConnections()
		out, err := exec.Command(bin, "check", "--data", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("round %d: phivault check after the crash failed: %v\n%s", round, err, out)
		}
		if t.Failed() {
			t.Fatalf("round %d failed; server log:\n%s", round, srv.stderr.String())
		}
	}
	if total < crashRounds*crashWriters {
		t.Errorf("only %d writes were acknowledged in %d rounds: the test did not load the server", total, crashRounds)
	}
	t.Logf("%d acknowledged writes over %d kill -9 rounds; %d unanswered updates were found committed", total, crashRounds, landed)
}

type runningServer struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan struct{}
}

// startServer runs 'phivault serve' on a free port and waits until it
// announces its URL.
func startServer(t *testing.T, bin, dir string) *runningServer {
	t.Helper()
	s := &runningServer{cmd: exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--log-level", "error"), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "phivault is serving FHIR R4 at "); ok {
				urls <- strings.TrimSuffix(u, "/fhir")
			}
		}
		s.cmd.Wait()
		close(s.done)
	}()
	select {
	case s.url = <-urls:
	case <-s.done:
		t.Fatalf("the server exited before serving:\n%s", s.stderr.String())
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("the server did not start in 30s:\n%s", s.stderr.String())
	}
	return s
}

func (s *runningServer) kill() {
	s.cmd.Process.Kill() // SIGKILL
	<-s.done
}

func (s *runningServer) stop(t *testing.T) {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.kill()
		t.Errorf("the server did not stop on SIGINT within 30s")
	}
}

type crashClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
	// landed counts updates that were in flight at a kill and found
	// committed after the restart.
	landed atomic.Int64
}

// do sends one request and returns the status, the ETag version and the
// body; err is a transport error (the server died).
func (c *crashClient) do(ctx context.Context, method, path string, body []byte) (int, string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", nil, err
	}
	return resp.StatusCode, resp.Header.Get("ETag"), b, nil
}

func patientBody(id, marker string) []byte {
	r := map[string]any{"resourceType": "Patient", "active": true,
		"name": []any{map[string]any{"family": marker}}}
	if id != "" {
		r["id"] = id
	}
	b, _ := json.Marshal(r)
	return b
}

// writeUntilKilled runs crashWriters writers of creates and updates, kills
// the server after d, and returns how many writes were acknowledged.
func (c *crashClient) writeUntilKilled(srv *runningServer, owned [][]*crashRes, round int, d time.Duration) int {
	var killed atomic.Bool
	var acked atomic.Int64
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
			for n := 0; ; n++ {
				marker := fmt.Sprintf("crash-r%d-w%d-n%d", round, g, n)
				if len(owned[g]) == 0 || rng.IntN(3) == 0 {
					status, et, body, err := c.do(context.Background(), "POST", "/fhir/Patient", patientBody("", marker))
					if err != nil {
						return
					}
					var res struct{ ID string }
					json.Unmarshal(body, &res)
					if status != http.StatusCreated || et != `W/"1"` || res.ID == "" {
						c.t.Errorf("create answered %d %s before the kill: %s", status, et, body)
						return
					}
					owned[g] = append(owned[g], &crashRes{id: res.ID, acked: []ack{{1, marker}}})
				} else {
					r := owned[g][rng.IntN(len(owned[g]))]
					want := r.last().vid + 1
					r.pending = &ack{want, marker}
					status, et, body, err := c.do(context.Background(), "PUT", "/fhir/Patient/"+r.id, patientBody(r.id, marker))
					if err != nil {
						return // pending stays: the write may or may not have landed
					}
					r.pending = nil
					if status != http.StatusOK || et != fmt.Sprintf(`W/"%d"`, want) {
						c.t.Errorf("update of Patient/%s answered %d %s, want 200 W/\"%d\": %.200s", r.id, status, et, want, body)
						return
					}
					r.acked = append(r.acked, ack{want, marker})
				}
				acked.Add(1)
				if killed.Load() {
					return // answered after the kill: counted, but stop
				}
			}
		})
	}
	time.Sleep(d)
	killed.Store(true)
	srv.kill()
	wg.Wait()
	return int(acked.Load())
}

// verify reads back every acknowledged version of every resource, and the
// current version, which is the last acknowledged one or the pending
// update that was in flight at the crash (then adopted as acknowledged).
func (c *crashClient) verify(owned [][]*crashRes) {
	var all []*crashRes
	for _, rs := range owned {
		all = append(all, rs...)
	}
	work := make(chan *crashRes)
	var wg sync.WaitGroup
	for range crashWriters {
		wg.Go(func() {
			for r := range work {
				c.verifyOne(r)
			}
		})
	}
	for _, r := range all {
		work <- r
	}
	close(work)
	wg.Wait()
}

func (c *crashClient) verifyOne(r *crashRes) {
	ctx := context.Background()
	read := func(path string) (int64, string, bool) {
		status, _, body, err := c.do(ctx, "GET", path, nil)
		if err != nil || status != http.StatusOK {
			c.t.Errorf("GET %s: %v %d %.200s", path, err, status, body)
			return 0, "", false
		}
		var res struct {
			ID   string
			Meta struct{ VersionID string }
			Name []struct{ Family string }
		}
		if err := json.Unmarshal(body, &res); err != nil || len(res.Name) != 1 || res.ID != r.id {
			c.t.Errorf("GET %s: not the resource written: %.200s", path, body)
			return 0, "", false
		}
		var vid int64
		fmt.Sscan(res.Meta.VersionID, &vid)
		return vid, res.Name[0].Family, true
	}
	vid, marker, ok := read("/fhir/Patient/" + r.id)
	if !ok {
		return
	}
	last := r.last()
	switch {
	case r.pending != nil && vid == r.pending.vid && marker == r.pending.marker:
		r.acked = append(r.acked, *r.pending) // the in-flight update landed
		c.landed.Add(1)
	case vid != last.vid || marker != last.marker:
		c.t.Errorf("Patient/%s is at version %d (%s), want the last acknowledged %d (%s) or the in-flight one",
			r.id, vid, marker, last.vid, last.marker)
	}
	r.pending = nil
	for _, a := range r.acked {
		v, m, ok := read(fmt.Sprintf("/fhir/Patient/%s/_history/%d", r.id, a.vid))
		if ok && (v != a.vid || m != a.marker) {
			c.t.Errorf("Patient/%s/_history/%d holds version %d (%s), want %s", r.id, a.vid, v, m, a.marker)
		}
	}
}
