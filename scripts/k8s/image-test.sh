#!/usr/bin/env bash
# Runs the built images the way the chart does (read-only root, uid 65532, no
# capabilities) and checks graceful shutdown:
#   0. image-inspect.sh: the images' own configuration (numeric non-root
#      USER, exposed ports, exec-form entrypoint, version label), which the
#      runs below cannot see because they force --user like the chart; and
#      once running, both binaries report that version (spool_build_info),
#      so the -ldflags stamp took effect;
#   1. a fresh database; `spool-api migrate` from the api image (exit 0);
#   2. the api image serving, the worker image working, both `podman run
#      --network host` against PostgreSQL on this machine;
#   3. scenario "finish": a `sleep` job of 3 s is running when the worker gets
#      `podman stop -t 10`: the job completes, the worker exits 0 as PID 1;
#   4. scenario "hand back": SPOOL_SHUTDOWN_TIMEOUT=1s and a 20 s job: after
#      the stop the job is cancelled and back to pending (attempt not lost),
#      the worker exits 0 well inside the 10 s, the attempt is not counted;
#   5. the example custom worker (examples/customworker, spool-shop-worker):
#      `shop-worker migrate` creates the shop's tables (exit 0); the worker,
#      hardened the same way and PID 1, publishes its kind shop.receipt
#      (GET /v1/kinds of the api image lists it with that worker); a
#      shop.receipt job enqueued through the API for an order completes and
#      writes the receipt row; `podman stop -t 10`: exit 0 with a clean exit;
#   6. the API gets `podman stop -t 20` and exits 0 after its drain.
# Jobs are enqueued through the API (POST /v1/jobs), never by SQL.
# Usage: scripts/k8s/image-test.sh [TAG]   (default: dev; `make images` first)
# PostgreSQL: TEST_DATABASE_URL (admin URL) or scripts/pg-ensure.sh's choice;
# `make image-test` wraps this in scripts/with-pg.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}
tag=${1:-dev}
api_image=localhost/spool-api:$tag
worker_image=localhost/spool-worker:$tag
shop_image=localhost/spool-shop-worker:$tag
for img in "$api_image" "$worker_image" "$shop_image"; do
	podman image exists "$img" || die "$img not found; run make images"
done
have jq || die "needs jq"
have curl || die "needs curl"
psql=$(pg_client psql) || die "needs psql"

admin=${TEST_DATABASE_URL:-$("$root/scripts/pg-ensure.sh")}
db=spool_imgtest_$$
db_url=$(printf '%s' "$admin" | sed -E "s#/[^/?]*(\\?|$)#/$db\\1#")
run=imgtest-$$
logs=$(mktemp -d)
token=imgtest-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")

# The chart's securityContext: read-only root filesystem (plus a /tmp, like
# its emptyDir), non-root uid, no capabilities, no privilege escalation.
hardened=(--read-only --read-only-tmpfs --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges)

# free_port: a port nothing listens on, below the kernel's ephemeral range:
# a port in that range can be the local end of an outgoing connection (to
# PostgreSQL, say), which no listener sees but which makes bind fail.
free_port() {
	local p low=32768
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	((low > 12000)) || low=32768
	while :; do
		p=$((10000 + RANDOM % (low - 10000)))
		tcp_open 127.0.0.1 "$p" || { echo "$p"; return; }
	done
}
http_port=$(free_port)
api_admin=$(free_port)
worker_admin=$(free_port)
shop_admin=$(free_port)
api=http://127.0.0.1:$http_port

cleanup() {
	local rc=$?
	if ((rc != 0)); then
		for c in "$run-api" "$run-worker" "$run-shop"; do
			podman logs "$c" 2>&1 | tail -n 30 | sed "s/^/[$c] /" >&2 || true
		done
	fi
	podman rm -f --ignore "$run-api" "$run-worker" "$run-shop" >/dev/null 2>&1 || true
	rm -rf "$logs"
	"$psql" -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	exit "$rc"
}
trap cleanup EXIT

pass() { printf 'image-test: ok: %s\n' "$*" >&2; }
fail() { die "FAIL: $*"; }

wait_http() { # URL SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

enqueue() { # JSON → job id
	curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		--data "$1" "$api/v1/jobs" | jq -r .job.id
}
status() { curl -sS -H "Authorization: Bearer $token" "$api/v1/jobs/$1" | jq -r .job.status; }
wait_status() { # ID STATUS SECONDS
	local i s
	for ((i = 0; i < $3 * 10; i++)); do
		s=$(status "$1")
		[[ $s == "$2" ]] && return 0
		sleep 0.1
	done
	log "job $1 is $s, not $2"
	return 1
}

start_worker() { # extra podman args...
	podman run -d --name "$run-worker" --network host "${hardened[@]}" \
		-e DATABASE_URL="$db_url" -e SPOOL_ADMIN_ADDR="127.0.0.1:$worker_admin" \
		-e SPOOL_WORKER_ID="$run-worker" -e SPOOL_LOG_FORMAT=text "$@" "$worker_image" >/dev/null
	wait_http "http://127.0.0.1:$worker_admin/readyz" 20 || fail "worker not ready"
	local pid1
	pid1=$(podman top "$run-worker" pid args | awk 'NR==2 { print $1, $2 }')
	[[ $pid1 == "1 /usr/local/bin/spool-worker" ]] || fail "worker is not PID 1: $pid1"
}

# stop_worker [CONTAINER BINARY]: podman stop -t 10; fails unless exit 0 with
# a clean-exit log line (in $logs/worker.log); sets stop_seconds.
stop_worker() {
	local c=${1:-$run-worker} bin=${2:-spool-worker} t0 t1
	t0=$(date +%s.%N)
	podman stop -t 10 "$c" >/dev/null
	t1=$(date +%s.%N)
	stop_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	exit_code=$(podman inspect "$c" --format '{{.State.ExitCode}}')
	podman logs "$c" >"$logs/worker.log" 2>&1
	podman rm "$c" >/dev/null
	[[ $exit_code == 0 ]] || fail "$bin exit code $exit_code after podman stop (137 = SIGKILL)"
	grep -q "$bin exiting.*clean=true" "$logs/worker.log" ||
		{ tail -n 20 "$logs/worker.log" >&2; fail "$bin did not log a clean exit"; }
}

# version_reported NAME ADMIN_PORT: the running binary's spool_build_info
# carries the version stamped at build time (the image label's).
version_reported() {
	local got
	got=$(curl -fsS "http://127.0.0.1:$2/metrics" | sed -nE 's/^spool_build_info\{(.*,)?version="([^"]*)".*/\2/p') ||
		fail "$1: GET /metrics failed"
	[[ $got == "$version" ]] ||
		fail "$1 reports version '$got' (spool_build_info), want '$version' (image label): the -ldflags -X stamp did not take effect"
	pass "$1 reports version $got"
}

# 0. The images' configuration.
version=$("$root/scripts/k8s/image-inspect.sh" "$api_image" "$worker_image" "$shop_image") ||
	fail "image configuration (see above)"
pass "image configuration: numeric non-root USER, exposed ports, exec-form entrypoint, version $version"

# 1. Fresh database, migrated by the api image.
"$psql" -q "$admin" -c "CREATE DATABASE $db" >/dev/null
podman run --rm --network host "${hardened[@]}" -e DATABASE_URL="$db_url" "$api_image" migrate >/dev/null ||
	fail "spool-api migrate exited $?"
pass "migrate exited 0 (fresh database $db)"

# 2. API.
podman run -d --name "$run-api" --network host "${hardened[@]}" \
	-e DATABASE_URL="$db_url" -e SPOOL_HTTP_ADDR="127.0.0.1:$http_port" \
	-e SPOOL_ADMIN_ADDR="127.0.0.1:$api_admin" -e SPOOL_API_TOKENS="$token:rw" \
	-e SPOOL_LOG_FORMAT=text "$api_image" >/dev/null
wait_http "http://127.0.0.1:$api_admin/readyz" 20 || fail "api not ready"
pass "api ready on $api"
version_reported api "$api_admin"

# 3. Finish: the job outlives the stop signal but not the shutdown timeout.
start_worker
version_reported worker "$worker_admin"
id=$(enqueue '{"type":"sleep","payload":{"ms":3000}}')
wait_status "$id" running 10 || fail "sleep job $id never ran"
stop_worker
s=$(status "$id")
[[ $s == completed ]] || fail "job $id is $s after a graceful stop, want completed"
pass "finish: worker exited 0 in ${stop_seconds}s, job $id $s"

# 4. Hand back: shutdown timeout shorter than the job.
start_worker -e SPOOL_SHUTDOWN_TIMEOUT=1s
id=$(enqueue '{"type":"sleep","payload":{"ms":20000}}')
wait_status "$id" running 10 || fail "sleep job $id never ran"
stop_worker
awk -v s="$stop_seconds" 'BEGIN { exit !(s < 5) }' || fail "worker took ${stop_seconds}s to hand back and exit, want < 5s"
s=$(status "$id")
[[ $s == pending ]] || fail "job $id is $s after the shutdown timeout, want pending (handed back)"
grep -q 'job handed back on shutdown.*job_id='"$id" "$logs/worker.log" || fail "worker did not log the hand-back of job $id"
attempts=$(curl -sS -H "Authorization: Bearer $token" "$api/v1/jobs/$id" | jq -r .job.attempts)
[[ $attempts == 0 ]] || fail "job $id has attempts=$attempts after the hand-back, want 0 (not counted)"
pass "hand back: worker exited 0 in ${stop_seconds}s, job $id $s, attempts $attempts"

# 5. The example custom worker: its own tables, its own kind, run through
# the stock API like any other job.
podman run --rm --network host "${hardened[@]}" -e DATABASE_URL="$db_url" "$shop_image" migrate >/dev/null ||
	fail "shop-worker migrate exited $?"
pass "custom worker: shop-worker migrate exited 0 (the shop's tables)"
podman run -d --name "$run-shop" --network host "${hardened[@]}" \
	-e DATABASE_URL="$db_url" -e SPOOL_ADMIN_ADDR="127.0.0.1:$shop_admin" \
	-e SPOOL_WORKER_ID="$run-shop" -e SPOOL_LOG_FORMAT=text "$shop_image" >/dev/null
wait_http "http://127.0.0.1:$shop_admin/readyz" 20 || fail "shop-worker not ready"
pid1=$(podman top "$run-shop" pid args | awk 'NR==2 { print $1, $2 }')
[[ $pid1 == "1 /usr/local/bin/shop-worker" ]] || fail "shop-worker is not PID 1: $pid1"
version_reported shop-worker "$shop_admin"
workers=$(curl -fsS -H "Authorization: Bearer $token" "$api/v1/kinds" |
	jq -c '[.kinds[] | select(.name == "shop.receipt") | .workers[]]') || fail "GET /v1/kinds failed"
jq -e --arg w "$run-shop" 'index($w) != null' <<<"$workers" >/dev/null ||
	fail "GET /v1/kinds: shop.receipt is served by $workers, want [\"$run-shop\"]"
pass "custom worker: ready as PID 1, GET /v1/kinds lists shop.receipt served by $run-shop"
order=$("$psql" -qAt "$db_url" -c "INSERT INTO orders (email, total_cents) VALUES ('ada@example.com', 2500) RETURNING id") ||
	fail "insert the shop's order"
id=$(enqueue '{"type":"shop.receipt","payload":{"order_id":'"$order"',"email":"ada@example.com"}}')
[[ -n $id && $id != null ]] || fail "POST /v1/jobs shop.receipt was refused"
wait_status "$id" completed 20 || fail "shop.receipt job $id did not complete"
receipts=$("$psql" -qAt "$db_url" -c "SELECT count(*) FROM receipts WHERE order_id = $order AND sent_to = 'ada@example.com'")
[[ $receipts == 1 ]] || fail "order $order has $receipts receipts after job $id, want 1"
stop_worker "$run-shop" shop-worker
pass "custom worker: shop.receipt job $id completed (receipt of order $order written), exited 0 in ${stop_seconds}s"

# 6. API: readiness fails, drain delay, shutdown, exit 0.
t0=$(date +%s)
podman stop -t 20 "$run-api" >/dev/null
code=$(podman inspect "$run-api" --format '{{.State.ExitCode}}')
[[ $code == 0 ]] || fail "api exit code $code after podman stop"
pass "api exited 0 in $(($(date +%s) - t0))s after SIGTERM"
