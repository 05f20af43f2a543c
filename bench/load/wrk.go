package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

// The wrk driver sends the GET workloads (healthz, read, searches) through wrk
// (Debian's wrk, an HTTP load generator written in C) instead of this
// program's Go client: the same paths drawn at random, the same token,
// clients and duration, one keep-alive HTTP/1.1 connection per client.
// On a 2-core machine the load generator takes its CPU from the server;
// wrk takes less of it, so the pair of drivers shows how much the Go
// client's own cost holds the server's figures down.

//go:embed paths.lua
var wrkScript []byte

// wrkPaths returns the URL paths workload w requests: wrk drives the
// workloads that are GETs needing no body and no state (healthz, read and
// the searches). wrk checks only the status of an answer, so each search
// URL is first sent once through the Go client and its answer checked as
// the go driver checks every answer; the data does not change while the
// searches run.
func (t *target) wrkPaths(ctx context.Context, w string) ([]string, error) {
	var urls []string
	switch w {
	case "healthz":
		urls = []string{t.root() + "/healthz"}
	case "read":
		refs, err := t.readRefs(ctx)
		if err != nil {
			return nil, err
		}
		urls = refs
	case "search-patient", "search-date", "search-chain", "search-include":
		us, include, err := t.searchURLs(ctx, w)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			if _, err := t.search(ctx, u, include); err != nil {
				return nil, fmt.Errorf("checking %s before the wrk run: %w", u, err)
			}
		}
		urls = us
	default:
		return nil, fmt.Errorf("-driver wrk runs healthz, read and the searches, not %s", w)
	}
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = requestURI(u)
	}
	return out, nil
}

// requestURI is the path and query of the absolute URL u.
func requestURI(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.RequestURI()
}

// wrkRun measures one point with wrk: a warm-up run whose figures are
// dropped, then the measured one. With countItems each answer counts as
// one resource (a read); without, none are counted (a search answer holds
// matches wrk does not count).
func (t *target) wrkRun(ctx context.Context, paths []string, l loadgen.Limits, countItems bool) (loadgen.Result, error) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return loadgen.Result{}, errors.New("-driver wrk needs wrk on PATH (apt-get install -y wrk)")
	}
	dir, err := os.MkdirTemp("", "phivault-wrk-") // the script, the paths and the token, for wrk to read
	if err != nil {
		return loadgen.Result{}, err
	}
	defer os.RemoveAll(dir)
	script, pathsFile, tokenFile := filepath.Join(dir, "paths.lua"), filepath.Join(dir, "paths"), filepath.Join(dir, "token")
	for name, data := range map[string][]byte{script: wrkScript, pathsFile: []byte(strings.Join(paths, "\n") + "\n"), tokenFile: []byte(t.c.token + "\n")} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return loadgen.Result{}, err
		}
	}
	threads := wrkThreads(l.Clients, runtime.NumCPU())
	point := func(d time.Duration) (wrkSummary, time.Duration, error) {
		cmd := exec.CommandContext(ctx, bin, "-t", fmt.Sprint(threads), "-c", fmt.Sprint(l.Clients),
			"-d", fmt.Sprintf("%ds", max(1, int(d.Round(time.Second).Seconds()))), "--timeout", "30s",
			"-s", script, t.root(), "--", pathsFile, tokenFile)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			return wrkSummary{}, 0, fmt.Errorf("wrk: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		var cpu time.Duration
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		s, err := parseWrk(out.Bytes())
		return s, cpu, err
	}
	if l.Warmup > 0 {
		if _, _, err := point(l.Warmup); err != nil {
			return loadgen.Result{}, err
		}
	}
	srv0 := loadgen.ProcCPU(l.ServerPID)
	s, cpu, err := point(l.Duration)
	if err != nil {
		return loadgen.Result{}, err
	}
	srv := loadgen.ProcCPU(l.ServerPID) - srv0
	wall := time.Duration(s.DurationUS) * time.Microsecond
	if wall <= 0 {
		return loadgen.Result{}, errors.New("wrk reported no duration")
	}
	// wrk counts an answer with a status above 399 as a request and as an
	// error (bench/load's own client wants 200: for these GETs nothing
	// else but errors comes back), and its latencies include those answers.
	errs := s.Connect + s.Read + s.Write + s.Status + s.Timeout
	ok := s.Requests - s.Status
	var items int64
	if countItems {
		items = ok
	}
	r := loadgen.Result{Clients: l.Clients, Seconds: wall.Seconds(), Ops: ok, Items: items, Errors: errs,
		OpsPerSec: float64(ok) / wall.Seconds(), ItemsPerSec: float64(items) / wall.Seconds(),
		P50ms: float64(s.P50US) / 1000, P90ms: float64(s.P90US) / 1000, P99ms: float64(s.P99US) / 1000, MaxMs: float64(s.MaxUS) / 1000,
		ToolCPUPct: 100 * cpu.Seconds() / wall.Seconds(), ServerCPUPct: 100 * srv.Seconds() / wall.Seconds()}
	if s.Requests > 0 {
		r.RespBytes = float64(s.Bytes) / float64(s.Requests) // headers included, unlike bench/load's figure
	}
	if errs > 0 {
		r.FirstError = fmt.Sprintf("wrk: %d connect, %d read, %d write, %d status (4xx/5xx), %d timeout errors",
			s.Connect, s.Read, s.Write, s.Status, s.Timeout)
	}
	return r, nil
}

// wrkThreads is the number of wrk threads for clients connections on
// cores: the largest divisor of clients that is at most cores, as wrk
// gives each thread clients/threads connections, rounded down.
func wrkThreads(clients, cores int) int {
	for t := min(clients, cores); t > 1; t-- {
		if clients%t == 0 {
			return t
		}
	}
	return 1
}

// wrkSummary is the JSON line paths.lua prints when wrk is done.
type wrkSummary struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Bytes      int64 `json:"bytes"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"`
	Timeout    int64 `json:"timeout"`
	P50US      int64 `json:"p50_us"`
	P90US      int64 `json:"p90_us"`
	P99US      int64 `json:"p99_us"`
	MaxUS      int64 `json:"max_us"`
}

// parseWrk finds the summary line in wrk's output (after its own report).
func parseWrk(out []byte) (wrkSummary, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if line := bytes.TrimSpace(lines[i]); bytes.HasPrefix(line, []byte(`{"requests":`)) {
			var s wrkSummary
			err := json.Unmarshal(line, &s)
			return s, err
		}
	}
	return wrkSummary{}, fmt.Errorf("no summary in wrk's output: %.300s", out)
}
