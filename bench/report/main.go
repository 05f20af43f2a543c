// Command report turns the JSON lines written by bench/load and
// bench/sqlitebase into the markdown tables of docs/benchmarks.md: each
// phivault point beside the SQLite baselines measured in the same round,
// with the ratio phivault/baseline.
//
//	go run ./bench/report results.jsonl
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

// targets from issues 2 and 3, per second on a 2-core machine
// (resources/s for the transaction import).
var targets = map[string]float64{"read": 15000, "create": 5000, "transaction": 20000, "search-patient": 3000}

func main() {
	flag.Parse()
	rs, err := loadgen.ReadJSON(flag.Args()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	type key struct {
		target, workload string
		clients, round   int
	}
	by := map[key]loadgen.Result{}
	for _, r := range rs {
		by[key{r.Target, r.Workload, r.Clients, r.Round}] = r
	}
	rate := func(r loadgen.Result) float64 {
		if r.Workload == "transaction" {
			return r.ItemsPerSec
		}
		return r.OpsPerSec
	}
	cell := func(k key, pv loadgen.Result) string {
		b, ok := by[k]
		if !ok || rate(b) == 0 {
			return "- | -"
		}
		return fmt.Sprintf("%s | %.2f", loadgen.Num(rate(b)), rate(pv)/rate(b))
	}

	fmt.Println("Rates are requests/s, except transaction: resources/s. Ratios are phivault / baseline from the same round.")
	fmt.Println()
	fmt.Println("| workload | clients | round | phivault | p50 ms | p99 ms | errors | server CPU % | load tool CPU % | target | sqlite (one commit each) | ratio | sqlite (group commit) | ratio |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	var pv []loadgen.Result
	for _, r := range rs {
		if r.Target == "phivault" {
			pv = append(pv, r)
		}
	}
	slices.SortStableFunc(pv, byPoint)
	for _, r := range pv {
		t := "-"
		if v, ok := targets[r.Workload]; ok {
			t = loadgen.Num(v)
		}
		each, group := cell(key{"sqlite-each", r.Workload, r.Clients, r.Round}, r), cell(key{"sqlite-group", r.Workload, r.Clients, r.Round}, r)
		if r.Workload == "read" {
			each, group = cell(key{"sqlite", r.Workload, r.Clients, r.Round}, r), "- | -"
		}
		fmt.Printf("| %s | %d | %d | %s | %.1f | %.1f | %d | %.0f | %.0f | %s | %s | %s |\n",
			r.Workload, r.Clients, r.Round, loadgen.Num(rate(r)), r.P50ms, r.P99ms, r.Errors, r.ServerCPUPct, r.ToolCPUPct, t, each, group)
	}

	pgTable(rs, rate)
	plainTable(rs, rate)
	wrkTable(rs, rate)

	fmt.Println()
	fmt.Println("Load-tool ceiling (GET /healthz over the same TLS connections: no authentication, no storage):")
	fmt.Println()
	fmt.Println("| clients | round | requests/s | p50 ms | p99 ms | errors | server CPU % | load tool CPU % |")
	fmt.Println("|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rs {
		if r.Target == "healthz" {
			fmt.Printf("| %d | %d | %s | %.2f | %.2f | %d | %.0f | %.0f |\n", r.Clients, r.Round, loadgen.Num(r.OpsPerSec), r.P50ms, r.P99ms, r.Errors, r.ServerCPUPct, r.ToolCPUPct)
		}
	}

	fmt.Println()
	fmt.Println("All points:")
	fmt.Println()
	loadgen.TableHeader(os.Stdout)
	for _, r := range rs {
		loadgen.Row(os.Stdout, r)
	}
}

// byPoint orders results by workload, then clients, then round.
func byPoint(a, b loadgen.Result) int {
	order := []string{"search-patient", "search-date", "search-chain", "search-include", "read", "create", "create-patient", "update", "transaction"}
	if a.Workload != b.Workload {
		return slices.Index(order, a.Workload) - slices.Index(order, b.Workload)
	}
	if a.Clients != b.Clients {
		return a.Clients - b.Clients
	}
	return a.Round - b.Round
}

// pairs returns each point of target other, in point order, beside the
// point of target base with the same workload, clients and round.
func pairs(rs []loadgen.Result, base, other string) [][2]loadgen.Result {
	type key struct {
		workload       string
		clients, round int
	}
	byKey := map[key]loadgen.Result{}
	var others []loadgen.Result
	for _, r := range rs {
		switch r.Target {
		case base:
			byKey[key{r.Workload, r.Clients, r.Round}] = r
		case other:
			others = append(others, r)
		}
	}
	slices.SortStableFunc(others, byPoint)
	var out [][2]loadgen.Result
	for _, o := range others {
		if b, ok := byKey[key{o.Workload, o.Clients, o.Round}]; ok {
			out = append(out, [2]loadgen.Result{b, o})
		}
	}
	return out
}

// pgTable prints, when the run served the same workloads from PostgreSQL
// too (target phivault-pg), each point beside the embedded store's from
// the same round.
func pgTable(rs []loadgen.Result, rate func(loadgen.Result) float64) {
	ps := pairs(rs, "phivault", "phivault-pg")
	if len(ps) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("The same server on PostgreSQL beside the embedded SQLite store, same round (ratio PostgreSQL / SQLite):")
	fmt.Println()
	fmt.Println("| workload | clients | round | SQLite | PostgreSQL | ratio | SQLite p99 ms | PostgreSQL p99 ms | PostgreSQL errors |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, sp := range ps {
		s, p := sp[0], sp[1]
		if rate(s) == 0 {
			continue
		}
		fmt.Printf("| %s | %d | %d | %s | %s | %.2f | %.1f | %.1f | %d |\n", p.Workload, p.Clients, p.Round,
			loadgen.Num(rate(s)), loadgen.Num(rate(p)), rate(p)/rate(s), s.P99ms, p.P99ms, p.Errors)
	}
}
