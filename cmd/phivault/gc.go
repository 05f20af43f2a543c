package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// serveGCPercent is the garbage collector's target for a serving process
// when the operator has not set GOGC: a collection starts once the heap
// has grown by 400% of what the last one left live, instead of Go's 100%.
// A search allocates as it decrypts, scans and answers; at 100% the
// collector took about a tenth of the server's CPU under the
// patient-scoped search. At 200% a search cost 9-12% less CPU than at
// 100%, and at 400% another 8% less (series of four and five pairs side
// by side, docs/benchmarks.md). The price is memory: the heap peaks at
// about five times its live size (the caches bound the live size: 64 MiB
// of versions, 64 MiB of posting sets and 32 MiB of token sets, the
// memos); the benchmark's server peaked at 229 MB resident instead of 167
// MB at 200%. servedMemoryLimit keeps that within the machine.
const serveGCPercent = 400

// tuneGC sets serveGCPercent unless GOGC is set, and a soft memory limit
// of half the memory the process may use (the machine's, or its cgroup's
// if lower) unless GOMEMLIMIT is set: near the limit the collector runs
// more often, whatever the percentage.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		if n := servedMemoryLimit(); n > 0 {
			debug.SetMemoryLimit(n)
		}
	}
}

// servedMemoryLimit is half of the least of the machine's memory
// (/proc/meminfo) and the cgroup's limit (cgroup v2 memory.max); 0 when
// neither is known.
func servedMemoryLimit() int64 {
	least := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
					least = kb << 10
				}
			}
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (least == 0 || n < least) {
			least = n
		}
	}
	return least / 2
}
