#!/usr/bin/env bash
# make bench-http: POST /v1/jobs through the real API at its default
# settings, loaded by Debian's wrk, against pgbench's single-row INSERT into
# the same table (same trigger and indexes), on the same PostgreSQL, in A B
# pairs (the order alternates). Prints each pair and the medians: the API's
# req/s at 64 connections over pgbench's tps at 64 clients, p99 latency,
# 429s and other non-2xx answers, the API at 1 connection, the API's peak
# RSS, and whether the table holds the jobs answered 201 (plus at most the
# requests in flight when wrk stopped).
#   BENCH_PAIRS (5)  BENCH_SECONDS (10)  BENCH_CONNS (64)
#   BENCH_API: a spool-api binary to measure instead of this tree's (a
#   baseline built from an older commit)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pairs=${BENCH_PAIRS:-5}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-64}
for c in wrk pgbench psql go; do
	command -v "$c" >/dev/null || { echo "make bench-http needs $c (apt-get install -y wrk postgresql-client)" >&2; exit 1; }
done
admin=${BENCH_PG_URL:-$(scripts/pg-ensure.sh)}
db=spool_bench_http_$$
url=$(printf '%s' "$admin" | sed -E "s#/[^/?]*(\\?|$)#/$db\\1#")
work=$(mktemp -d)
api_pid=
cleanup() {
	[[ -n $api_pid ]] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
	psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
if [[ -n ${BENCH_API:-} ]]; then
	cp "$BENCH_API" "$work/spool-api"
else
	go build -o "$work/spool-api" ./services/api
fi
psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
SPOOL_DATABASE_URL=$url "$work/spool-api" migrate >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
token=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n")
SPOOL_DATABASE_URL=$url SPOOL_HTTP_ADDR=127.0.0.1:$port SPOOL_ADMIN_ADDR=127.0.0.1:$(free_port) \
	SPOOL_API_TOKENS=$token:rw SPOOL_OPEN_KINDS=noop SPOOL_LOG_LEVEL=warn "$work/spool-api" 2>"$work/api.log" &
api_pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/stats" && break; sleep 0.1; done

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"type":"noop"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
echo "INSERT INTO spool.spool_jobs (type, payload) VALUES ('noop', '{}');" >"$work/insert.sql"

# wrk_run CONNS: "req/s p99_ms non2xx requests"
wrk_run() {
	local out
	out=$(wrk -t"$(( $1 < 2 ? 1 : 2 ))" -c"$1" -d"${secs}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port/v1/jobs")
	local rps p99 non2xx reqs
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$out")
	non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	echo "$rps ${p99:-?} ${non2xx:-0} $reqs"
}
pgbench_run() {
	pgbench -n -c"$conns" -j2 -T"$secs" -f "$work/insert.sql" "$url" 2>/dev/null | awk '/^tps = / {print $3; exit}'
}
rows() { psql -Atq "$url" -c "SELECT count(*) FROM spool.spool_jobs"; }

printf '%-5s %10s %9s %8s %10s %8s %10s %8s %6s\n' pair api_rps p99_ms non2xx pg_tps ratio api_1conn p99_1 rows
ratios=() one=() p99s=() exact=yes
for ((i = 1; i <= pairs; i++)); do
	psql -q "$url" -c "TRUNCATE spool.spool_jobs" >/dev/null
	if ((i % 2)); then
		read -r rps p99 bad reqs < <(wrk_run "$conns"); n=$(rows); tps=$(pgbench_run)
	else
		tps=$(pgbench_run); psql -q "$url" -c "TRUNCATE spool.spool_jobs" >/dev/null
		read -r rps p99 bad reqs < <(wrk_run "$conns"); n=$(rows)
	fi
	# Every 2xx answer is a row; the rows past them are the requests still
	# in flight when wrk stopped counting (at most one per connection).
	extra=$((n - (reqs - bad)))
	((extra >= 0 && extra <= conns)) || exact="no (pair $i: $n rows, $((reqs - bad)) answers 2xx)"
	read -r rps1 p991 _ _ < <(wrk_run 1)
	# The ratio counts only 2xx answers: a 429 is not a job written.
	ratio=$(awk -v r="$rps" -v n="$reqs" -v bad="$bad" -v b="$tps" 'BEGIN {printf "%.2f", r * (n - bad) / n / b}')
	printf '%-5s %10s %9s %8s %10.0f %8s %10s %8s %6s\n' "$i" "$rps" "$p99" "$bad" "$tps" "$ratio" "$rps1" "$p991" "$n"
	ratios+=("$ratio") one+=("$rps1") p99s+=("$p99")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
hwm=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$api_pid/status")
echo "median ratio API ${conns}c / pgbench ${conns}c: $(median "${ratios[@]}")x; median p99 $(median "${p99s[@]}") ms; median API at 1 connection $(median "${one[@]}") req/s"
echo "API peak RSS ${hwm} MiB; every 2xx answer is a row, and at most one row per connection more (in flight at the end): $exact"
