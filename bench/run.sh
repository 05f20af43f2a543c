#!/usr/bin/env bash
# bench/run.sh: phivault's core benchmarks and their SQLite baseline, side by
# side in one run. It builds phivault and the bench tools, creates a
# throw-away data directory (development key), imports a synthetic
# population, serves it on a loopback port, runs bench/load for every
# workload and client count, runs bench/sqlitebase (the same workloads
# straight into SQLite with the same durability) after it in each round,
# then profiles the server's CPU during the read and create workloads and
# writes the tables to $OUT/results.md.
#
# Settings (environment): PATIENTS (100), CLIENTS (16,64), DURATION (10s),
# ROUNDS (2), WORKLOADS (healthz,read,create,update,transaction), PROTO (h1),
# PORT (18443), PROFILE_DURATION (10s), OUT (a new directory under /tmp),
# REV (build this git revision, e.g. HEAD, from a clean export instead of
# the working tree, which others may be editing).
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${PATIENTS:-100}
CLIENTS=${CLIENTS:-16,64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-healthz,read,create,update,transaction}
PROTO=${PROTO:-h1}
PORT=${PORT:-18443}
PROFILE_DURATION=${PROFILE_DURATION:-10s}
OUT=${OUT:-$(mktemp -d /tmp/phivault-bench-XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=$OUT/bin DATA=$OUT/data POP=$OUT/population
RESULTS=$OUT/results.jsonl
URL=https://127.0.0.1:$PORT/fhir
base_workloads=$(echo "$WORKLOADS" | tr ',' '\n' | grep -vx healthz | paste -sd, -)

log() { echo "== $*" >&2; }

log "building into $BIN"
mkdir -p "$BIN"
if [ -n "${REV:-}" ]; then
	rm -rf "$OUT/src" && mkdir -p "$OUT/src"
	git archive "$REV" | tar -x -C "$OUT/src"
	echo "source: git $(git rev-parse --short "$REV")" >"$OUT/source.txt"
	cd "$OUT/src"
else
	echo "source: working tree at $(git rev-parse --short HEAD) (+ local changes: $(git status --porcelain | wc -l) files)" >"$OUT/source.txt"
fi
go build -o "$BIN/phivault" ./cmd/phivault
go build -o "$BIN/load" ./bench/load
go build -o "$BIN/sqlitebase" ./bench/sqlitebase
go build -o "$BIN/report" ./bench/report
cat "$OUT/source.txt" >&2

log "machine"
{
	echo "date: $(date -u +%FT%TZ)"
	cat "$OUT/source.txt"
	echo "go: $(go version)"
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo || true
	free -h
	df -h "$OUT" | tail -1
	echo "loadavg at start: $(cat /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

log "init $DATA (development key)"
rm -rf "$DATA" "$POP" "$RESULTS" "$OUT/serve.log" # left by an earlier run into the same OUT
"$BIN/phivault" init --dev-key --data "$DATA" >/dev/null 2>"$OUT/init.log"
"$BIN/load" -write-synth "$POP" -patients "$PATIENTS" -seed 1

log "import $PATIENTS patients (offline, through the import command)"
"$BIN/phivault" import --data "$DATA" "$POP/shared.json" >/dev/null
t0=$(date +%s.%N)
"$BIN/phivault" import --data "$DATA" "$POP/patients" | tee "$OUT/import.txt" >&2
t1=$(date +%s.%N)
res=$(sed -n 's/.*(\([0-9]*\) resources).*/\1/p' "$OUT/import.txt")
awk -v r="$res" -v a="$t0" -v b="$t1" 'BEGIN { printf "import: %d resources in %.1f s = %.0f resources/s\n", r, b-a, r/(b-a) }' | tee -a "$OUT/import.txt" >&2

SERVER_PID=
start_server() { # [profile file]
	if [ -n "${1:-}" ]; then
		PHIVAULT_CPUPROFILE=$1 "$BIN/phivault" serve --data "$DATA" --listen "127.0.0.1:$PORT" --log-level warn >>"$OUT/serve.log" 2>&1 &
	else
		"$BIN/phivault" serve --data "$DATA" --listen "127.0.0.1:$PORT" --log-level warn >>"$OUT/serve.log" 2>&1 &
	fi
	SERVER_PID=$!
	for _ in $(seq 100); do
		curl -sf --cacert "$DATA/tls/cert.pem" "https://127.0.0.1:$PORT/healthz" >/dev/null && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/serve.log" >&2; return 1; }
		sleep 0.1
	done
	echo "server did not start" >&2
	return 1
}
stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}
trap stop_server EXIT

load() {
	"$BIN/load" -url "$URL" -token-file "$DATA/bootstrap-token" -cacert "$DATA/tls/cert.pem" \
		-proto "$PROTO" -server-pid "$SERVER_PID" "$@"
}

for round in $(seq "$ROUNDS"); do
	log "round $round: phivault ($WORKLOADS; clients $CLIENTS; $DURATION each)"
	start_server
	load -clients "$CLIENTS" -duration "$DURATION" -workload "$WORKLOADS" -round "$round" -json "$RESULTS" >/dev/null
	stop_server
	log "round $round: SQLite baseline ($base_workloads)"
	"$BIN/sqlitebase" -dir "$OUT/sqlite-$round" -clients "$CLIENTS" -duration "$DURATION" \
		-workload "$base_workloads" -round "$round" -json "$RESULTS" >/dev/null
	rm -rf "$OUT/sqlite-$round"
done

{
	echo "# phivault benchmarks, $(date -u +%F)"
	echo
	echo '```'
	cat "$OUT/machine.txt"
	echo '```'
	echo
	echo "Preload: $(tail -1 "$OUT/import.txt"). Protocol: $PROTO. Each point: $DURATION after a 2 s warm-up."
	echo
	"$BIN/report" "$RESULTS"
} >"$OUT/results.md"
for w in read create; do
	log "CPU profile of the server during $w (64 clients, $PROFILE_DURATION)"
	start_server "$OUT/cpu-$w.prof"
	# A failure here (say, the server stopped from outside) must not lose
	# the tables written above.
	load -clients 64 -duration "$PROFILE_DURATION" -workload "$w" >/dev/null || log "WARNING: the $w profile run failed"
	stop_server
	go tool pprof -top -nodecount=35 "$BIN/phivault" "$OUT/cpu-$w.prof" >"$OUT/cpu-$w.top" 2>/dev/null || true
	go tool pprof -top -cum -nodecount=60 "$BIN/phivault" "$OUT/cpu-$w.prof" >"$OUT/cpu-$w.cum" 2>/dev/null || true
done

log "results: $OUT/results.md (JSON: $RESULTS; profiles: $OUT/cpu-*.prof)"
cat "$OUT/results.md"
