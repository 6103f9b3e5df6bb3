#!/usr/bin/env bash
# make bench: Spool against River on the same PostgreSQL, in the same run,
# following the protocol in $BENCH_DIR (PROTOCOL.md, compare.sh, river/).
# Builds both harnesses outside the repository, then runs the standard set
# as A B pairs twice: A = River at its defaults, then River tuned
# (-fetch-cooldown 1ms). GROWTH=1 adds the growth pairs (0 vs 1M finished
# rows) and pick-up latency while the pruner deletes 1M expired rows.
# Results (JSON lines) and summaries go to $BENCH_OUT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench_dir=$(realpath -m "${BENCH_DIR:-../shared/bench}")
pairs=${BENCH_PAIRS:-3}
out=$(realpath -m "${BENCH_OUT:-.dev/bench/$(date -u +%Y%m%dT%H%M%SZ)}")
if [[ ! -x $bench_dir/compare.sh || ! -d $bench_dir/river ]]; then
	echo "no benchmark kit at $bench_dir (compare.sh and river/): set BENCH_DIR" >&2
	exit 1
fi
command -v jq >/dev/null || { echo "make bench needs jq" >&2; exit 1; }
mkdir -p "$out"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "building harnesses into $bin" >&2
(cd "$bench_dir/river" && go build -o "$bin/river" .)
go build -o "$bin/spool" ./bench/spool

url=${BENCH_PG_URL:-$(scripts/pg-ensure.sh)}
export BENCH_PG_URL=$url
psql "$url" -Atc "SELECT 'postgres ' || version()" >"$out/machine.txt" 2>/dev/null || true
{ nproc; free -g | head -2; uptime; } >>"$out/machine.txt"

echo "== A0: River defaults vs Spool defaults ($pairs pairs)" >&2
"$bench_dir/compare.sh" "$bin/river" "$bin/spool" "$pairs" "$out/default.jsonl" | tee "$out/default.tsv"
echo "== A1: River tuned (-fetch-cooldown 1ms) vs Spool defaults ($pairs pairs)" >&2
A_FLAGS="-fetch-cooldown 1ms" "$bench_dir/compare.sh" "$bin/river" "$bin/spool" "$pairs" "$out/tuned.jsonl" | tee "$out/tuned.tsv"

if [[ ${GROWTH:-0} == 1 ]]; then
	echo "== growth: drain with 0 and 1M finished rows, River tuned and Spool" >&2
	for ((i = 1; i <= pairs; i++)); do
		for prefill in 0 1000000; do
			"$bin/river" -mode throughput -n 100000 -concurrent=false -fetch-cooldown 1ms -prefill-finished "$prefill" |
				jq -c --argjson p "$i" '. + {pair: $p}' >>"$out/growth.jsonl"
			"$bin/spool" -mode throughput -n 100000 -concurrent=false -prefill-finished "$prefill" |
				jq -c --argjson p "$i" '. + {pair: $p}' >>"$out/growth.jsonl"
		done
	done
	jq -s -r 'group_by(.system)[] | group_by(.pair)[] |
		(map(select(.prefill_finished == 0))[0]) as $e | (map(select(.prefill_finished > 0))[0]) as $f |
		"\($e.system) pair \($e.pair): drain \($e.work_jobs_per_s) (empty) vs \($f.work_jobs_per_s) (1M finished): ratio \(($f.work_jobs_per_s / $e.work_jobs_per_s * 1000 | round) / 1000)"' \
		"$out/growth.jsonl" | tee "$out/growth.txt"
	echo "== pick-up latency while the worker prunes 1M expired jobs (Spool)" >&2
	for ((i = 1; i <= pairs; i++)); do
		"$bin/spool" -mode latency -prefill-expired 1000000 >>"$out/prune-latency.jsonl"
	done
	jq -r '"p50 \(.p50_ms) p90 \(.p90_ms) p99 \(.p99_ms) max \(.max_ms) tail_max \(.tail_max_ms) ms; pruned \(.pruned_during_run), pruning through \(.prune_covered_measured * 100 | round)% of the measured period"' \
		"$out/prune-latency.jsonl" | tee "$out/prune-latency.txt"
fi
echo "results in $out" >&2
