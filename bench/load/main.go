// Command load is phivault's HTTPS load generator. It runs N concurrent
// clients against a phivault server on this machine (loopback addresses
// only: it refuses any other target) for a bounded time and number of
// requests, and reports throughput, p50/p99 latency and errors per
// workload, as a markdown table and as JSON lines.
//
//	go run ./bench/load -url https://127.0.0.1:8443/fhir -token-file DIR/bootstrap-token \
//	    -cacert DIR/tls/cert.pem -clients 16,64 -duration 20s -workload read,create,update,transaction
//
// Workloads: read (GET of random existing Patients and Observations, found
// through type history first), create (POST of an Observation about an
// existing patient; the server answers after its commit is durable),
// create-patient, update (PUT of an existing Observation, each client its
// own set), transaction (POST of one synthetic patient's transaction bundle
// from internal/synth; reports resources/s) and healthz (GET /healthz, no
// authentication and no storage: the ceiling of this tool plus TLS and
// the HTTP stack on this machine), and the searches of search.go
// (search-patient, search-date, search-chain, search-include; counted in
// searches/s).
//
// With -write-synth DIR it instead writes the synthetic population that
// bench/run.sh preloads with 'phivault import'.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type config struct {
	base      string
	token     string
	proto     string
	clients   []int
	workloads []string
	limits    loadgen.Limits
	readIDs   int
	txSeed    int64
	txFirst   int
	txPool    int
	jsonOut   string
	round     int
	label     string
	driver    string // "go" (this program's client) or "wrk"
}

func run() error {
	var (
		c          config
		rawURL     = flag.String("url", "https://127.0.0.1:8443/fhir", "FHIR base URL (a loopback address)")
		tokenFile  = flag.String("token-file", "", "file holding a bearer token (e.g. DIR/bootstrap-token)")
		cacert     = flag.String("cacert", "", "CA certificate to trust (e.g. DIR/tls/cert.pem)")
		clients    = flag.String("clients", "16,64", "concurrent clients, a comma-separated list")
		workloads  = flag.String("workload", "read,create,update,transaction", "workloads: read, create, create-patient, update, transaction, healthz, search-patient, search-date, search-chain, search-include")
		writeSynth = flag.String("write-synth", "", "write the preload population (shared bundle + -patients bundles) to this directory and exit")
		patients   = flag.Int("patients", 200, "with -write-synth: patients to write")
	)
	flag.StringVar(&c.proto, "proto", "h1", "h1 (HTTP/1.1 keep-alive, one connection per client) or h2 (HTTP/2)")
	flag.DurationVar(&c.limits.Duration, "duration", 20*time.Second, "measure each point for this long")
	flag.Int64Var(&c.limits.MaxOps, "max-requests", 1_000_000, "and for at most this many requests")
	flag.DurationVar(&c.limits.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each point")
	flag.IntVar(&c.limits.ServerPID, "server-pid", 0, "pid of the server, to report its CPU use (Linux /proc)")
	flag.IntVar(&c.readIDs, "read-ids", 4000, "existing Patients and Observations (each) to read from")
	flag.Int64Var(&c.txSeed, "seed", 1, "seed of the synthetic population")
	flag.IntVar(&c.txFirst, "tx-first", 1_000_000, "index of the first synthetic patient the transaction workload posts")
	flag.IntVar(&c.txPool, "tx-bundles", 256, "distinct transaction bundles built before measuring (reused round robin)")
	flag.StringVar(&c.jsonOut, "json", "", "append results as JSON lines to this file")
	flag.IntVar(&c.round, "round", 0, "round number recorded with the results")
	flag.StringVar(&c.label, "label", "phivault", "target name recorded with the results (e.g. phivault-pg for a server on PostgreSQL)")
	flag.StringVar(&c.driver, "driver", "go", "go (this program's HTTP client) or wrk (Debian's wrk, for read and healthz; results labelled TARGET-wrk)")
	flag.Parse()

	if *writeSynth != "" {
		return writePopulation(*writeSynth, c.txSeed, *patients)
	}
	u, err := checkLoopbackURL(*rawURL)
	if err != nil {
		return err
	}
	c.base = strings.TrimSuffix(u.String(), "/")
	if c.clients, err = loadgen.ParseInts(*clients); err != nil {
		return fmt.Errorf("-clients: %v", err)
	}
	c.workloads = loadgen.ParseList(*workloads)
	if c.driver != "go" && (c.driver != "wrk" || c.proto != "h1") {
		return fmt.Errorf("-driver %q with -proto %s: want go, or wrk with h1", c.driver, c.proto)
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		c.token = strings.TrimSpace(string(b))
	}
	maxClients := 0
	for _, n := range c.clients {
		maxClients = max(maxClients, n)
	}
	hc, err := newClient(c.proto, *cacert, maxClients)
	if err != nil {
		return err
	}
	t := &target{c: c, hc: hc}
	var results []loadgen.Result
	for _, w := range c.workloads {
		measure, err := t.measurer(w, maxClients)
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		for _, n := range c.clients {
			l := c.limits
			l.Clients = n
			r, err := measure(l)
			if err != nil {
				return fmt.Errorf("%s: %w", w, err)
			}
			r.Target, r.Workload, r.Proto, r.Round = c.label, w, c.proto, c.round
			if w == "healthz" {
				r.Target = "healthz"
			}
			if c.driver == "wrk" {
				r.Target += "-wrk"
			}
			fmt.Fprintf(os.Stderr, "%-11s clients=%-3d %9s ops/s %9s resources/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  tool CPU %3.0f%%  server CPU %3.0f%%\n",
				w, n, loadgen.Num(r.OpsPerSec), loadgen.Num(r.ItemsPerSec), r.P50ms, r.P99ms, r.Errors, r.ToolCPUPct, r.ServerCPUPct)
			if r.FirstError != "" {
				fmt.Fprintf(os.Stderr, "  first error: %s\n", r.FirstError)
			}
			if err := loadgen.WriteJSON(c.jsonOut, r); err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	loadgen.TableHeader(os.Stdout)
	for _, r := range results {
		loadgen.Row(os.Stdout, r)
	}
	for _, r := range results {
		if r.Errors > 0 {
			return fmt.Errorf("%d errors in %s with %d clients (first: %s)", r.Errors, r.Workload, r.Clients, r.FirstError)
		}
	}
	return nil
}

// measurer prepares workload w and returns what measures one point of it
// with the configured driver.
func (t *target) measurer(w string, maxClients int) (func(loadgen.Limits) (loadgen.Result, error), error) {
	ctx := context.Background()
	if t.c.driver == "wrk" {
		paths, err := t.wrkPaths(ctx, w)
		if err != nil {
			return nil, err
		}
		countItems := !slices.Contains(searchWorkloads, w)
		return func(l loadgen.Limits) (loadgen.Result, error) { return t.wrkRun(ctx, paths, l, countItems) }, nil
	}
	op, err := t.prepare(w, maxClients)
	if err != nil {
		return nil, err
	}
	return func(l loadgen.Limits) (loadgen.Result, error) {
		t.reqBytes.Store(0)
		t.respBytes.Store(0)
		t.calls.Store(0)
		r := loadgen.Run(ctx, l, op)
		if calls := t.calls.Load(); calls > 0 {
			r.ReqBytes = float64(t.reqBytes.Load()) / float64(calls)
			r.RespBytes = float64(t.respBytes.Load()) / float64(calls)
		}
		return r, nil
	}, nil
}

// target is the server under load and what the workloads need from it.
type target struct {
	c  config
	hc *http.Client

	reqBytes, respBytes, calls atomic.Int64

	pop *population // what the search workloads draw from, loaded once
}

// root is the server's URL, without the FHIR base path.
func (t *target) root() string { return strings.TrimSuffix(t.c.base, "/fhir") }

// do sends one request and checks its status; the body is read fully (a
// client that does not read it is not a client).
func (t *target) do(ctx context.Context, method, url string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if t.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.c.token)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	t.calls.Add(1)
	t.reqBytes.Add(int64(len(body)))
	t.respBytes.Add(int64(len(b)))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %.200s", method, url, resp.StatusCode, want, b)
	}
	return b, nil
}

// prepare loads what workload w needs and returns its operation.
func (t *target) prepare(w string, maxClients int) (loadgen.Op, error) {
	ctx := context.Background()
	switch w {
	case "search-patient", "search-date", "search-chain", "search-include":
		return t.searchOp(ctx, w, maxClients)

	case "healthz":
		url := t.root() + "/healthz"
		return func(ctx context.Context, c, seq int) (int, error) {
			_, err := t.do(ctx, "GET", url, nil, http.StatusOK)
			return 1, err
		}, nil

	case "read":
		refs, err := t.readRefs(ctx)
		if err != nil {
			return nil, err
		}
		rngs := clientRands(maxClients, 1)
		return func(ctx context.Context, c, seq int) (int, error) {
			_, err := t.do(ctx, "GET", refs[rngs[c].IntN(len(refs))], nil, http.StatusOK)
			return 1, err
		}, nil

	case "create", "create-patient":
		pats, err := t.ids(ctx, "Patient", 1000)
		if err != nil {
			return nil, err
		}
		if len(pats) == 0 && w == "create" {
			return nil, errors.New("no Patients for the Observations to refer to: load some first")
		}
		rngs := clientRands(maxClients, 2)
		url := t.c.base + "/Observation"
		if w == "create-patient" {
			url = t.c.base + "/Patient"
		}
		return func(ctx context.Context, c, seq int) (int, error) {
			r := rngs[c]
			var body []byte
			if w == "create" {
				body = loadgen.Observation(r, pats[r.IntN(len(pats))])
			} else {
				body = loadgen.Patient(r)
			}
			_, err := t.do(ctx, "POST", url, body, http.StatusCreated)
			return 1, err
		}, nil

	case "update":
		// Each client updates its own Observations, so no two clients
		// write the same resource and the measure is not of conflicts.
		per := 8
		obs, err := t.ids(ctx, "Observation", maxClients*per)
		if err != nil {
			return nil, err
		}
		if len(obs) < maxClients {
			return nil, fmt.Errorf("only %d Observations to update, need at least %d", len(obs), maxClients)
		}
		bodies := make([]map[string]any, len(obs))
		for i, id := range obs {
			b, err := t.do(ctx, "GET", t.c.base+"/Observation/"+id, nil, http.StatusOK)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &bodies[i]); err != nil {
				return nil, err
			}
			delete(bodies[i], "meta")
		}
		rngs := clientRands(maxClients, 3)
		return func(ctx context.Context, c, seq int) (int, error) {
			// client c owns indexes c, c+maxClients, ...
			i := c + maxClients*(seq%max(len(obs)/maxClients, 1))
			i = min(i, len(obs)-1)
			res := bodies[i] // only client c touches it

			res["issued"] = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rngs[c].Int64N(1e6)) * time.Second).Format(time.RFC3339)
			body, err := json.Marshal(res)
			if err != nil {
				return 0, err
			}
			_, err = t.do(ctx, "PUT", t.c.base+"/Observation/"+obs[i], body, http.StatusOK)
			return 1, err
		}, nil

	case "transaction":
		if _, err := t.do(ctx, "POST", t.c.base, loadgen.SharedBundle(t.c.txSeed), http.StatusOK); err != nil {
			return nil, fmt.Errorf("loading the shared bundle: %w", err)
		}
		fmt.Fprintf(os.Stderr, "transaction: building %d synthetic patient bundles...\n", t.c.txPool)
		bundles := loadgen.SynthBundles(t.c.txSeed, t.c.txFirst, t.c.txPool)
		var next atomic.Int64
		return func(ctx context.Context, c, seq int) (int, error) {
			b := bundles[int(next.Add(1)-1)%len(bundles)]
			if _, err := t.do(ctx, "POST", t.c.base, b.Body, http.StatusOK); err != nil {
				return 0, err
			}
			return len(b.Resources), nil
		}, nil
	}
	return nil, fmt.Errorf("unknown workload (read, create, create-patient, update, transaction, healthz, %s)", strings.Join(searchWorkloads, ", "))
}

// readRefs returns the URLs the read workload draws from: up to
// -read-ids existing Patients and as many Observations.
func (t *target) readRefs(ctx context.Context) ([]string, error) {
	pats, err := t.ids(ctx, "Patient", t.c.readIDs)
	if err != nil {
		return nil, err
	}
	obs, err := t.ids(ctx, "Observation", t.c.readIDs)
	if err != nil {
		return nil, err
	}
	if len(pats) == 0 || len(obs) == 0 {
		return nil, errors.New("no Patients or Observations to read: load some first")
	}
	fmt.Fprintf(os.Stderr, "read: %d Patients and %d Observations\n", len(pats), len(obs))
	refs := make([]string, 0, len(pats)+len(obs))
	for _, id := range pats {
		refs = append(refs, t.c.base+"/Patient/"+id)
	}
	for _, id := range obs {
		refs = append(refs, t.c.base+"/Observation/"+id)
	}
	return refs, nil
}

// ids returns up to n ids of existing resources of type typ, newest first,
// from the type's history (which pages by a stable cursor).
func (t *target) ids(ctx context.Context, typ string, n int) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	url := fmt.Sprintf("%s/%s/_history?_count=%d", t.c.base, typ, min(n, 1000))
	for url != "" && len(out) < n {
		if _, err := checkLoopbackURL(url); err != nil {
			return nil, err
		}
		b, err := t.do(ctx, "GET", url, nil, http.StatusOK)
		if err != nil {
			return nil, err
		}
		var page struct {
			Entry []struct {
				Resource struct{ ID string } `json:"resource"`
				Request  struct{ Method string }
			} `json:"entry"`
			Link []struct{ Relation, URL string } `json:"link"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, err
		}
		for _, e := range page.Entry {
			if id := e.Resource.ID; id != "" && e.Request.Method != "DELETE" && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		url = ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				url = l.URL
			}
		}
	}
	return out[:min(n, len(out))], nil
}

// clientRands gives each client its own deterministic generator.
func clientRands(n int, stream uint64) []*rand.Rand {
	out := make([]*rand.Rand, n)
	for i := range out {
		out[i] = rand.New(rand.NewPCG(uint64(i)+1, stream))
	}
	return out
}

// writePopulation writes the preload population: shared.json (PUT
// entries, import it first) and patients/NNNNNN.json.
func writePopulation(dir string, seed int64, n int) error {
	if err := os.MkdirAll(filepath.Join(dir, "patients"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "shared.json"), loadgen.SharedBundle(seed), 0o644); err != nil {
		return err
	}
	resources := 0
	for i, b := range loadgen.SynthBundles(seed, 0, n) {
		resources += len(b.Resources)
		if err := os.WriteFile(filepath.Join(dir, "patients", fmt.Sprintf("%06d.json", i)), b.Body, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %d patient bundles (%d resources) to %s\n", n, resources, dir)
	return nil
}
