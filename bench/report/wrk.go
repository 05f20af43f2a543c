package main

import (
	"fmt"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

// wrkTable prints, when the run also drove reads and /healthz with wrk
// (targets phivault-wrk and healthz-wrk), each of those points beside
// bench/load's from the same round and server: what the server delivers
// when the load generator beside it on the same cores costs less. Each
// driver's CPU per request is its CPU % over its rate.
func wrkTable(rs []loadgen.Result, rate func(loadgen.Result) float64) {
	ps := append(pairs(rs, "phivault", "phivault-wrk"), pairs(rs, "healthz", "healthz-wrk")...)
	if len(ps) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("The same server driven by bench/load (Go) and by wrk (C), same round (ratio wrk / Go):")
	fmt.Println()
	fmt.Println("| workload | clients | round | Go /s | wrk /s | wrk / Go | Go p50 ms | wrk p50 ms | Go p99 ms | wrk p99 ms | Go tool us/request | wrk tool us/request | Go server CPU % | wrk server CPU % | errors (Go / wrk) |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	perReq := func(r loadgen.Result) float64 { return 1e4 * r.ToolCPUPct / rate(r) } // % of a core over requests/s, in us
	for _, gw := range ps {
		g, w := gw[0], gw[1]
		if rate(g) == 0 || rate(w) == 0 {
			continue
		}
		fmt.Printf("| %s | %d | %d | %s | %s | %.2f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %.0f | %d / %d |\n", w.Workload, w.Clients, w.Round,
			loadgen.Num(rate(g)), loadgen.Num(rate(w)), rate(w)/rate(g), g.P50ms, w.P50ms, g.P99ms, w.P99ms,
			perReq(g), perReq(w), g.ServerCPUPct, w.ServerCPUPct, g.Errors, w.Errors)
	}
}
