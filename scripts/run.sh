#!/usr/bin/env bash
# run.sh (`make run`): run Spool on this machine. It finds or starts a
# PostgreSQL (scripts/pg-ensure.sh), creates the database "spool", builds both
# binaries, applies the migrations, then runs the API and one worker with their
# logs on this terminal. Ctrl-C stops everything this script started.
#
# Environment:
#   DATABASE_URL        use this database as it is (SPOOL_DATABASE_URL wins if
#                       both are set; default: database "spool" on
#                       the server that pg-ensure.sh finds or starts)
#   SPOOL_RUN_NOOPS     "noop" jobs to enqueue once the worker is up (default 5; 0: none)
#   SPOOL_STOP_TIMEOUT  seconds to wait for api and worker to stop before SIGKILL (default 30)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SPOOL_ROOT"

api_http=127.0.0.1:8080
api_admin=127.0.0.1:9090
worker_admin=127.0.0.1:9091
noop_jobs=${SPOOL_RUN_NOOPS:-5}
stop_timeout=${SPOOL_STOP_TIMEOUT:-30}
ready_timeout=30
run_dir=.dev/run # pid files, a copy of each log, the "we started PostgreSQL" marker

# The services prefer SPOOL_DATABASE_URL over DATABASE_URL; so do we.
user_url=${SPOOL_DATABASE_URL:-${DATABASE_URL:-}}
pg_started='' # marker file: non-empty once pg-ensure.sh started a server for us
# Each service's pid, and the background job (service | prefix) around it.
api_pid='' api_job=''
worker_pid='' worker_job=''
job_rc=0

log() { printf '[run] %s\n' "$*" >&2; }

main() {
	mkdir -p "$run_dir"
	check_ports_free

	trap cleanup EXIT
	trap 'exit 0' INT TERM

	pg_started=$(mktemp "$run_dir/pg-started.XXXXXX")
	local admin_url app_url
	admin_url=$(SPOOL_PG_STARTED_FILE=$pg_started scripts/pg-ensure.sh)
	if [[ -n $user_url ]]; then
		app_url=$user_url
	else
		app_url=$(with_db "$admin_url" spool)
	fi
	app_url=$(ensure_database "$app_url")

	export DATABASE_URL=$app_url SPOOL_DATABASE_URL=$app_url
	export SPOOL_LOG_FORMAT=text
	export SPOOL_AUTH_DISABLED=true
	# The quick start shows everything: the diagnostic kinds and the order
	# demo (its routes, kinds and tables, in schema spool_demo).
	export SPOOL_DIAGNOSTIC_JOBS=true SPOOL_DEMO=true

	log "building bin/spool-api and bin/spool-worker"
	"${MAKE:-make}" --no-print-directory build

	log "applying migrations"
	bin/spool-api migrate </dev/null 2>&1 | prefix migrate "$run_dir/migrate.log" ||
		die "migrations failed (see above)"

	log "auth is DISABLED (SPOOL_AUTH_DISABLED=true): for local use only"
	launch api env SPOOL_HTTP_ADDR="$api_http" SPOOL_ADMIN_ADDR="$api_admin" bin/spool-api
	api_pid=$launched_pid api_job=$launched_job
	# Debug logs show each job starting and completing, so jobs are seen to flow.
	launch worker env SPOOL_ADMIN_ADDR="$worker_admin" SPOOL_LOG_LEVEL="${SPOOL_WORKER_LOG_LEVEL:-debug}" bin/spool-worker
	worker_pid=$launched_pid worker_job=$launched_job

	wait_ready
	wait_kinds
	banner "$app_url"
	enqueue_noops

	# Sleep in the background so that a signal's trap runs at once.
	while alive "$api_pid" && alive "$worker_pid"; do
		sleep 1 &
		wait $! || true
	done
	if ! alive "$api_pid"; then
		reap api
		log "api exited unexpectedly (status $job_rc)"
	fi
	if ! alive "$worker_pid"; then
		reap worker
		log "worker exited unexpectedly (status $job_rc)"
	fi
	exit 1
}

# check_ports_free fails early when another `make run` (or anything else)
# holds one of our ports; otherwise /readyz might answer for someone else.
check_ports_free() {
	local addr busy=()
	for addr in "$api_http" "$api_admin" "$worker_admin"; do
		if tcp_open "${addr%:*}" "${addr##*:}"; then
			busy+=("$addr")
		fi
	done
	[[ ${#busy[@]} -eq 0 ]] && return
	log "already in use: ${busy[*]}"
	local f pid
	for f in "$run_dir"/api.pid "$run_dir"/worker.pid; do
		pid=$(cat "$f" 2>/dev/null) || continue
		if alive "$pid"; then
			log "another 'make run' seems to be running: ${f##*/} holds pid $pid"
		fi
	done
	die "stop whatever listens there and try again"
}

# URLs of the form postgres[ql]://userinfo@host:port/dbname?params
url_re='^(postgres(ql)?://[^/?#]*)(/[^?#]*)?([?#].*)?$'

# with_db URL DB prints URL with its database replaced by DB.
with_db() {
	[[ $1 =~ $url_re ]] || return 1
	printf '%s/%s%s\n' "${BASH_REMATCH[1]}" "$2" "${BASH_REMATCH[4]}"
}

# db_of URL prints the database named in URL.
db_of() {
	[[ $1 =~ $url_re ]] || return 1
	local db=${BASH_REMATCH[3]#/}
	[[ -n $db ]] || return 1
	printf '%s\n' "$db"
}

# redact URL hides the password in URL.
redact() {
	# shellcheck disable=SC2001 # a regex is clearer here
	sed 's#^\([a-z]*://[^:/@]*\):[^@]*@#\1:***@#' <<<"$1"
}

# ensure_database URL creates URL's database when it is missing, then prints
# the URL to use: URL itself, or, when psql is missing and we chose the
# database ourselves, the server's "postgres" database instead.
ensure_database() {
	local url=$1 db psql admin exists
	if ! db=$(db_of "$url") || [[ ! $db =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
		log "not checking the database of DATABASE_URL (cannot parse it); using it as it is"
		printf '%s\n' "$url"
		return
	fi
	if ! psql=$(pg_client psql); then
		if [[ -n $user_url ]]; then
			log "psql not found; assuming database '$db' exists"
			printf '%s\n' "$url"
		else
			log "psql not found, so database '$db' cannot be created; using database 'postgres' instead"
			log "(install the PostgreSQL client, e.g. apt-get install postgresql-client, to get a separate database)"
			with_db "$url" postgres
		fi
		return
	fi
	admin=$(with_db "$url" postgres)
	exists=$(PGCONNECT_TIMEOUT=10 "$psql" -X -w -Atq -d "$admin" -c "select 1 from pg_database where datname = '$db'") ||
		die "cannot connect to PostgreSQL at $(redact "$admin") (see above)"
	if [[ $exists != 1 ]]; then
		log "creating database '$db'"
		# A concurrent `make run` may win the race; that is fine.
		"$psql" -X -w -q -d "$admin" -c "create database \"$db\"" >/dev/null 2>&1 ||
			[[ $("$psql" -X -w -Atq -d "$admin" -c "select 1 from pg_database where datname = '$db'") == 1 ]] ||
			die "could not create database '$db'"
	fi
	printf '%s\n' "$url"
}

# prefix NAME LOGFILE copies its input to the terminal with "[NAME] " in
# front of each line, and as it is to LOGFILE.
prefix() {
	local line
	: >"$2"
	while IFS= read -r line || [[ -n $line ]]; do
		printf '[%s] %s\n' "$1" "$line"
		printf '%s\n' "$line" >&3
	done 3>>"$2"
}

# launch NAME COMMAND... starts COMMAND in the background with its output
# going through prefix, and sets launched_pid (COMMAND's pid) and
# launched_job (the background job). A small sh between the two records
# COMMAND's pid and, once it ends, its exit status in $run_dir/NAME.{pid,status}.
# The job gets its own process group (set -m), so Ctrl-C on the terminal
# reaches only this script, which then stops the services with one SIGTERM.
launch() {
	local name=$1 i
	shift
	rm -f "$run_dir/$name.pid" "$run_dir/$name.status"
	set -m
	# shellcheck disable=SC2016 # $0, $! and $@ belong to the inner sh
	sh -c '"$@" </dev/null & echo "$!" >"$0.pid"; wait "$!"; rc=$?; echo "$rc" >"$0.status"; exit "$rc"' \
		"$run_dir/$name" "$@" 2>&1 | prefix "$name" "$run_dir/$name.log" &
	launched_job=$!
	set +m
	for i in $(seq 1 50); do
		[[ -s $run_dir/$name.pid ]] && break
		sleep 0.1
	done
	launched_pid=$(cat "$run_dir/$name.pid") || die "$name did not start"
}

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

# reap NAME waits until the job of service NAME (api or worker) has ended and
# its output is flushed, sets job_rc to the service's exit status and forgets
# the job. It must not run in a $(...) subshell: only this shell can wait
# for its jobs.
reap() {
	local job_var=${1}_job
	job_rc=unknown
	[[ -n ${!job_var} ]] || return 0
	wait "${!job_var}" || true
	printf -v "$job_var" '%s' ''
	job_rc=$(cat "$run_dir/$1.status" 2>/dev/null) || job_rc=unknown
}

# http_status URL prints the HTTP status code of a GET (000: no answer).
http_status() {
	if have curl; then
		curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
		return
	fi
	local hostport=${1#http://} path
	path=/${hostport#*/}
	hostport=${hostport%%/*}
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit
		printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$1" >&3
		read -r _ code _ <&3 && printf "%s" "$code"' _ "$hostport" "$path" 2>/dev/null || printf 000
}

wait_ready() {
	local deadline=$((SECONDS + ready_timeout)) code=000
	log "waiting for http://$api_admin/readyz"
	while :; do
		if ! alive "$api_pid"; then
			reap api
			die "api exited before it was ready (status $job_rc)"
		fi
		if ! alive "$worker_pid"; then
			reap worker
			die "worker exited before the api was ready (status $job_rc)"
		fi
		code=$(http_status "http://$api_admin/readyz")
		[[ $code == 200 ]] && return
		if ((SECONDS >= deadline)); then
			show_logs
			die "the api was not ready after $ready_timeout s (last /readyz answer: $code)"
		fi
		sleep 0.5
	done
}

# wait_kinds waits until the worker has published its kinds, so that the
# API accepts them (it refuses kinds no worker published).
wait_kinds() {
	have curl || return 0
	local deadline=$((SECONDS + ready_timeout))
	until curl -s --max-time 2 "http://$api_http/v1/kinds" | grep -q '"name":"noop"'; do
		if ((SECONDS >= deadline)); then
			show_logs
			die "the worker did not publish its kinds within $ready_timeout s"
		fi
		sleep 0.3
	done
}

show_logs() {
	local name
	for name in api worker; do
		log "last lines of $run_dir/$name.log:"
		tail -n 30 "$run_dir/$name.log" >&2 || true
	done
}

banner() {
	cat <<EOF

Spool is running. Auth is DISABLED for local use (SPOOL_AUTH_DISABLED=true).
  API       http://$api_http/v1
  metrics   http://$api_admin/metrics (api)   http://$worker_admin/metrics (worker)
  database  $(redact "$1")
Try:
  curl -s -X POST localhost:8080/v1/jobs -H 'Content-Type: application/json' -d '{"type":"sleep","payload":{"ms":500}}'
  curl -s localhost:8080/v1/kinds
  make demo        # 200 orders through the order pipeline (examples/orders), reconciled
Ctrl-C stops everything.

EOF
}

enqueue_noops() {
	[[ $noop_jobs =~ ^[0-9]+$ && $noop_jobs -gt 0 ]] || return 0
	if ! have curl; then
		log "curl not found; no noop jobs"
		return
	fi
	local i out code ok=0
	for ((i = 1; i <= noop_jobs; i++)); do
		out=$(curl -s --max-time 5 -w '\n%{http_code}' -X POST "http://$api_http/v1/jobs" \
			-H 'Content-Type: application/json' -d '{"type":"noop","payload":{}}') || true
		code=${out##*$'\n'}
		if [[ $code != 2?? ]]; then
			log "noop job not accepted: HTTP $code ${out%$'\n'*}"
			break
		fi
		ok=$((ok + 1))
	done
	log "enqueued $ok noop job(s) through POST /v1/jobs (SPOOL_RUN_NOOPS=0 turns this off)"
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT
	trap '' INT TERM
	set +e
	stop_services
	if [[ -s $pg_started ]]; then
		scripts/pg-ensure.sh stop
	fi
	rm -f "$pg_started" "$run_dir"/*.pid "$run_dir"/*.status
	exit "$rc"
}

# stop_services sends SIGTERM to api and worker, waits up to stop_timeout
# seconds for both, then kills what is left.
# shellcheck disable=SC2317 # invoked from cleanup
stop_services() {
	local pids=() names=() pid deadline=$((SECONDS + stop_timeout))
	if alive "$api_pid" && kill -TERM "$api_pid" 2>/dev/null; then
		pids+=("$api_pid") names+=(api)
	fi
	if alive "$worker_pid" && kill -TERM "$worker_pid" 2>/dev/null; then
		pids+=("$worker_pid") names+=(worker)
	fi
	[[ ${#pids[@]} -gt 0 ]] || return 0
	log "stopping ${names[0]}${names[1]:+ and ${names[1]}} (SIGTERM; waiting up to $stop_timeout s)"
	while ((SECONDS < deadline)); do
		alive "${pids[0]}" || alive "${pids[1]:-}" || break
		sleep 0.2
	done
	for pid in "${pids[@]}"; do
		if alive "$pid"; then
			log "pid $pid did not stop within $stop_timeout s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	if [[ -n $api_job ]]; then
		reap api
		log "api exited with status $job_rc"
	fi
	if [[ -n $worker_job ]]; then
		reap worker
		log "worker exited with status $job_rc"
	fi
}

main "$@"
