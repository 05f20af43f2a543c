package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

// TestWrkDriver runs the real wrk against a TLS server: every request is
// a GET of one of the given paths with the token, and the result counts
// what the server answered.
func TestWrkDriver(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wrk is missing (apt-get install -y wrk) and CI=true")
		}
		t.Skip("wrk is missing; apt-get install -y wrk to test the wrk driver")
	}
	paths := []string{"/fhir/Patient/a", "/fhir/Observation/b-1", "/fhir/Patient/c"}
	var mu sync.Mutex
	seen := map[string]int{}
	var bad []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodGet || r.Header.Get("Authorization") != "Bearer tok-1" || r.Header.Get("Accept") != "application/fhir+json" {
			bad = append(bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		}
		seen[r.URL.Path]++
		if r.URL.Path == "/fhir/Patient/c" {
			http.Error(w, "gone", http.StatusGone)
			return
		}
		w.Write([]byte(`{"resourceType":"Patient"}`))
	}))
	defer srv.Close()
	tg := &target{c: config{base: srv.URL + "/fhir", token: "tok-1"}}
	r, err := tg.wrkRun(context.Background(), paths, loadgen.Limits{Clients: 2, Duration: time.Second}, true)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("requests not as sent by bench/load: %q", bad[:min(3, len(bad))])
	}
	total := 0
	for _, p := range paths {
		if seen[p] == 0 {
			t.Errorf("%s never requested (%v)", p, seen)
		}
		total += seen[p]
	}
	if len(seen) != len(paths) {
		t.Errorf("requested paths %v, want only %v", seen, paths)
	}
	// Answers still in flight when wrk stops are not counted by it.
	if int64(total) < r.Ops+r.Errors || int64(total) > r.Ops+r.Errors+2 {
		t.Errorf("server answered %d requests, wrk reports %d ok and %d errors", total, r.Ops, r.Errors)
	}
	// The 410 answers, and nothing else, are the errors.
	if gone := int64(seen["/fhir/Patient/c"]); r.Errors == 0 || r.Errors > gone || r.Errors < gone-2 || r.Ops == 0 ||
		!strings.HasPrefix(r.FirstError, "wrk: 0 connect, 0 read, 0 write, ") || !strings.HasSuffix(r.FirstError, ", 0 timeout errors") {
		t.Errorf("%d answers 410: %d errors (%q), %d ok", gone, r.Errors, r.FirstError, r.Ops)
	}
	if r.OpsPerSec <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms || r.ToolCPUPct <= 0 {
		t.Errorf("figures %+v", r)
	}
}

func TestWrkThreads(t *testing.T) {
	for _, c := range []struct{ clients, cores, want int }{{16, 2, 2}, {64, 2, 2}, {6, 4, 3}, {7, 4, 1}, {1, 8, 1}, {64, 48, 32}} {
		if got := wrkThreads(c.clients, c.cores); got != c.want {
			t.Errorf("wrkThreads(%d, %d) = %d, want %d", c.clients, c.cores, got, c.want)
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ https://127.0.0.1:1\n  2 threads and 2 connections\nRequests/sec: 10.00\n" +
		`{"requests":12,"duration_us":1000000,"bytes":100,"connect":0,"read":0,"write":0,"status":2,"timeout":0,"p50_us":10,"p90_us":20,"p99_us":30,"max_us":40}` + "\n"
	s, err := parseWrk([]byte(out))
	if err != nil || s.Requests != 12 || s.Status != 2 || s.P99US != 30 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := parseWrk([]byte("Running 1s test\nRequests/sec: 10.00\n")); err == nil {
		t.Fatal("output without the summary line parsed")
	}
}
