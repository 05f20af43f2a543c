package main

import (
	"os"
	"runtime/debug"
)

// serveGCPercent is the garbage collector's target for a serving process
// when the operator has not set GOGC: a collection starts once the heap
// has grown by 200% of what the last one left live, instead of Go's 100%.
// A search allocates as it decrypts, scans and answers; at 100% the
// collector took about a tenth of the server's CPU under the
// patient-scoped search, and at 200% a search cost 9-12% less CPU and the
// server answered 11-16% more of them (two series of five pairs side by
// side, docs/benchmarks.md). The price
// is memory: the heap peaks at about three times its live size (the
// caches bound the live size: 64 MiB of versions, 64 MiB of posting sets
// and 32 MiB of token sets, the memos) instead of twice. GOGC, or GOMEMLIMIT for a hard bound, still
// decides when set.
const serveGCPercent = 200

// tuneGC sets serveGCPercent unless GOGC is set.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}
