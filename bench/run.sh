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
# PORT (18443), PROFILE_DURATION (10s), PROFILES (the workloads to profile,
# comma-separated; by default read and create, and search-patient when
# measured), OUT (a new directory under /tmp),
# REV (build this git revision, e.g. HEAD, from a clean export instead of
# the working tree, which others may be editing), PG (1: also serve the same
# population from PostgreSQL - a throw-away server of Debian's postgresql
# started here on a unix socket, fsync and synchronous_commit on - on
# PORT+1, measured right after the SQLite server in each round, and
# reported side by side), PLAIN (1: also build the benchmark-only
# plaintext-index binary (tag benchplainindex), import the same population
# into its own data directory, serve it on PORT+2 and run the search
# workloads against it right after the same searches on the blind index in
# each round; reported as blind / plaintext ratios).
#
# Search workloads (search-patient, search-date, search-chain,
# search-include) run first in each round, before any workload that writes,
# so both builds search the same data; the SQLite baseline has no search.
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
DATA_PG=$OUT/data-pg PORT_PG=$((PORT + 1))
DATA_PLAIN=$OUT/data-plain PORT_PLAIN=$((PORT + 2))
pick() { echo "$WORKLOADS" | tr ',' '\n' | grep "$@" | paste -sd, - || true; } # grep args -> comma list
search_workloads=$(pick -x 'search-.*')
other_workloads=$(pick -vx 'search-.*')
pg_workloads=$(pick -vx healthz)
base_workloads=$(pick -vx 'healthz\|search-.*')
wrk_workloads= rest_workloads=$other_workloads
if [ -n "${WRK:-}" ]; then
	command -v wrk >/dev/null || { echo "WRK=1 needs wrk (apt-get install -y wrk)" >&2; exit 1; }
	[ "$PROTO" = h1 ] || { echo "WRK=1 needs PROTO=h1 (wrk speaks HTTP/1.1)" >&2; exit 1; }
	wrk_workloads=$(pick -x 'healthz\|read')
	rest_workloads=$(pick -vx 'search-.*\|healthz\|read')
fi

log() { echo "== $*" >&2; }

PG_BIN= PG_DIR= PG_RUN=()
pg_start() { # a throw-away PostgreSQL on a unix socket in $OUT/pg
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$PG_BIN" ] || { echo "PG=1 needs Debian's postgresql package" >&2; return 1; }
	PG_DIR=$OUT/pg
	rm -rf "$PG_DIR" && mkdir -p "$PG_DIR"
	if [ "$(id -u)" = 0 ]; then # initdb refuses root
		chown postgres: "$PG_DIR"
		PG_RUN=(runuser -u postgres --)
	fi
	"${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U phivault --auth=trust -E UTF8 >"$OUT/pg-init.log"
	"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
		-o "-k $PG_DIR -p 5432 -c listen_addresses='' -c max_connections=200" start >/dev/null
}
pg_stop() {
	[ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ] || return 0
	"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

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
if [ -n "${PLAIN:-}" ]; then # benchmark-only: plaintext search index tokens
	go build -tags benchplainindex -o "$BIN/phivault-plain" ./cmd/phivault
fi
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

import_population() { # DATA-DIR REPORT-FILE [BINARY]
	local bin=${3:-$BIN/phivault}
	"$bin" import --data "$1" "$POP/shared.json" >/dev/null
	t0=$(date +%s.%N)
	"$bin" import --data "$1" "$POP/patients" | tee "$2" >&2
	t1=$(date +%s.%N)
	res=$(sed -n 's/.*(\([0-9]*\) resources).*/\1/p' "$2")
	awk -v r="$res" -v a="$t0" -v b="$t1" 'BEGIN { printf "import: %d resources in %.1f s = %.0f resources/s\n", r, b-a, r/(b-a) }' | tee -a "$2" >&2
}
log "import $PATIENTS patients (offline, through the import command)"
import_population "$DATA" "$OUT/import.txt"
if [ -n "${PG:-}" ]; then
	log "PostgreSQL: start a throw-away server, init $DATA_PG on it, import the same population"
	trap pg_stop EXIT
	pg_start
	rm -rf "$DATA_PG"
	"$BIN/phivault" init --dev-key --data "$DATA_PG" --db "host=$PG_DIR port=5432 user=phivault dbname=postgres sslmode=disable" >/dev/null 2>"$OUT/init-pg.log"
	import_population "$DATA_PG" "$OUT/import-pg.txt"
fi
if [ -n "${PLAIN:-}" ]; then
	log "plaintext-index build (benchmark only): init $DATA_PLAIN, import the same population"
	rm -rf "$DATA_PLAIN"
	"$BIN/phivault-plain" init --dev-key --data "$DATA_PLAIN" >/dev/null 2>"$OUT/init-plain.log"
	import_population "$DATA_PLAIN" "$OUT/import-plain.txt" "$BIN/phivault-plain"
fi

SERVER_PID=
start_server() { # [profile file [data dir [port [binary]]]]
	local data=${2:-$DATA} port=${3:-$PORT} bin=${4:-$BIN/phivault}
	if [ -n "${1:-}" ]; then
		PHIVAULT_CPUPROFILE=$1 "$bin" serve --data "$data" --listen "127.0.0.1:$port" --log-level warn >>"$OUT/serve.log" 2>&1 &
	else
		"$bin" serve --data "$data" --listen "127.0.0.1:$port" --log-level warn >>"$OUT/serve.log" 2>&1 &
	fi
	SERVER_PID=$!
	for _ in $(seq 100); do
		curl -sf --cacert "$data/tls/cert.pem" "https://127.0.0.1:$port/healthz" >/dev/null && return 0
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
trap 'stop_server; pg_stop' EXIT

load() {
	"$BIN/load" -url "$URL" -token-file "$DATA/bootstrap-token" -cacert "$DATA/tls/cert.pem" \
		-proto "$PROTO" -server-pid "$SERVER_PID" "$@"
}
drivers() { # ROUND: the load drivers of a round, in order
	if [ -z "${WRK:-}" ]; then
		echo go
	elif [ $(($1 % 2)) = 1 ]; then
		echo go wrk
	else
		echo wrk go
	fi
}
load_plain() {
	"$BIN/load" -url "https://127.0.0.1:$PORT_PLAIN/fhir" -token-file "$DATA_PLAIN/bootstrap-token" -cacert "$DATA_PLAIN/tls/cert.pem" \
		-proto "$PROTO" -server-pid "$SERVER_PID" -label phivault-plain "$@"
}

for round in $(seq "$ROUNDS"); do
	if [ -n "$search_workloads" ]; then
		log "round $round: phivault, searches ($search_workloads; clients $CLIENTS; $DURATION each)"
		start_server
		for d in $(drivers "$round"); do
			load -driver "$d" -clients "$CLIENTS" -duration "$DURATION" -workload "$search_workloads" -round "$round" -json "$RESULTS" >/dev/null
		done
		stop_server
		if [ -n "${PLAIN:-}" ]; then
			log "round $round: plaintext-index build, the same searches"
			start_server "" "$DATA_PLAIN" "$PORT_PLAIN" "$BIN/phivault-plain"
			load_plain -clients "$CLIENTS" -duration "$DURATION" -workload "$search_workloads" -round "$round" -json "$RESULTS" >/dev/null
			stop_server
		fi
	fi
	if [ -n "$other_workloads" ]; then
		log "round $round: phivault ($other_workloads; clients $CLIENTS; $DURATION each)"
		start_server
		if [ -n "$wrk_workloads" ]; then
			for d in $(drivers "$round"); do
				log "round $round: $wrk_workloads driven by $d"
				load -driver "$d" -clients "$CLIENTS" -duration "$DURATION" -workload "$wrk_workloads" -round "$round" -json "$RESULTS" >/dev/null
			done
		fi
		if [ -n "$rest_workloads" ]; then
			load -clients "$CLIENTS" -duration "$DURATION" -workload "$rest_workloads" -round "$round" -json "$RESULTS" >/dev/null
		fi
		stop_server
	fi
	if [ -n "${PG:-}" ] && [ -n "$pg_workloads" ]; then
		log "round $round: phivault on PostgreSQL ($pg_workloads)"
		start_server "" "$DATA_PG" "$PORT_PG"
		"$BIN/load" -url "https://127.0.0.1:$PORT_PG/fhir" -token-file "$DATA_PG/bootstrap-token" -cacert "$DATA_PG/tls/cert.pem" \
			-proto "$PROTO" -server-pid "$SERVER_PID" -label phivault-pg \
			-clients "$CLIENTS" -duration "$DURATION" -workload "$pg_workloads" -round "$round" -json "$RESULTS" >/dev/null
		stop_server
	fi
	if [ -n "$base_workloads" ]; then
		log "round $round: SQLite baseline ($base_workloads)"
		"$BIN/sqlitebase" -dir "$OUT/sqlite-$round" -clients "$CLIENTS" -duration "$DURATION" \
			-workload "$base_workloads" -round "$round" -json "$RESULTS" >/dev/null
		rm -rf "$OUT/sqlite-$round"
	fi
done

{
	echo "# phivault benchmarks, $(date -u +%F)"
	echo
	echo '```'
	cat "$OUT/machine.txt"
	echo '```'
	echo
	echo "Preload: $(tail -1 "$OUT/import.txt")$([ -n "${PLAIN:-}" ] && echo "; plaintext-index build: $(tail -1 "$OUT/import-plain.txt")"). Protocol: $PROTO. Each point: $DURATION after a 2 s warm-up."
	echo
	"$BIN/report" "$RESULTS"
} >"$OUT/results.md"
# Profiles: those named in PROFILES; by default read and create when
# measured (or when no search workload is, as before), search-patient when
# measured - and with PLAIN the plaintext-index build during
# search-patient too.
profiles=()
if [ -n "${PROFILES:-}" ]; then
	IFS=, read -ra profiles <<<"$PROFILES"
else
	for w in read create; do
		if [ -z "$search_workloads" ] || [[ ",$WORKLOADS," == *",$w,"* ]]; then profiles+=("$w"); fi
	done
	if [[ ",$WORKLOADS," == *",search-patient,"* ]]; then
		profiles+=(search-patient)
		[ -z "${PLAIN:-}" ] || profiles+=(search-patient-plain)
	fi
fi
for p in "${profiles[@]}"; do
	w=${p%-plain}
	log "CPU profile of the server during $p (64 clients, $PROFILE_DURATION)"
	# A failure here (say, the server stopped from outside) must not lose
	# the tables written above.
	if [ "$p" = "$w" ]; then
		bin=$BIN/phivault
		start_server "$OUT/cpu-$p.prof"
		load -clients 64 -duration "$PROFILE_DURATION" -workload "$w" >/dev/null || log "WARNING: the $p profile run failed"
	else
		bin=$BIN/phivault-plain
		start_server "$OUT/cpu-$p.prof" "$DATA_PLAIN" "$PORT_PLAIN" "$bin"
		load_plain -clients 64 -duration "$PROFILE_DURATION" -workload "$w" >/dev/null || log "WARNING: the $p profile run failed"
	fi
	stop_server
	go tool pprof -top -nodecount=35 "$bin" "$OUT/cpu-$p.prof" >"$OUT/cpu-$p.top" 2>/dev/null || true
	go tool pprof -top -cum -nodecount=60 "$bin" "$OUT/cpu-$p.prof" >"$OUT/cpu-$p.cum" 2>/dev/null || true
done

log "results: $OUT/results.md (JSON: $RESULTS; profiles: $OUT/cpu-*.prof)"
cat "$OUT/results.md"
