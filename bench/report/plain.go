package main

import (
	"fmt"

	"github.com/phivault/phivault/bench/internal/loadgen"
)

// plainTable prints, when the run also served the benchmark-only
// plaintext-index build (target phivault-plain), each of its points beside
// the blind-index server's from the same round. The ratio is blind /
// plaintext throughput: 1.00 means the keyed hash of the index costs
// nothing, 0.80 that the blind index delivers 20% less (an overhead of
// 1/0.80 - 1 = 25%, the limit of issue 3). On a shared machine the two
// servers rarely get the same CPU, so the table also gives the ratio of
// searches per second of server CPU (each rate over its server's CPU use).
func plainTable(rs []loadgen.Result, rate func(loadgen.Result) float64) {
	ps := pairs(rs, "phivault", "phivault-plain")
	if len(ps) == 0 {
		return
	}
	fmt.Println()
	fmt.Println("The blind index beside the benchmark-only plaintext-index build, same round (throughput ratio blind / plaintext; overhead = plaintext / blind - 1):")
	fmt.Println()
	fmt.Println("| workload | clients | round | blind /s | plaintext /s | blind / plaintext | overhead | blind p50 ms | plaintext p50 ms | blind p99 ms | plaintext p99 ms | blind server CPU % | plaintext server CPU % | per server CPU: blind / plaintext | errors (blind / plaintext) |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, bp := range ps {
		b, p := bp[0], bp[1]
		if rate(b) == 0 || rate(p) == 0 {
			continue
		}
		perCPU := "-"
		if b.ServerCPUPct > 0 && p.ServerCPUPct > 0 {
			perCPU = fmt.Sprintf("%.2f", (rate(b)/b.ServerCPUPct)/(rate(p)/p.ServerCPUPct))
		}
		fmt.Printf("| %s | %d | %d | %s | %s | %.2f | %+.0f%% | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %s | %d / %d |\n", p.Workload, p.Clients, p.Round,
			loadgen.Num(rate(b)), loadgen.Num(rate(p)), rate(b)/rate(p), 100*(rate(p)/rate(b)-1),
			b.P50ms, p.P50ms, b.P99ms, p.P99ms, b.ServerCPUPct, p.ServerCPUPct, perCPU, b.Errors, p.Errors)
	}
}
