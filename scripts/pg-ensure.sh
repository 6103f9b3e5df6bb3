#!/usr/bin/env bash
# pg-ensure.sh: find or start a PostgreSQL for development and tests.
#
#   scripts/pg-ensure.sh           print ONE line on stdout: an admin URL (database
#                                  "postgres") of a usable server; logs go to stderr
#   scripts/pg-ensure.sh stop      stop the throwaway server if this script started
#                                  one (nothing else is ever stopped)
#   scripts/pg-ensure.sh destroy   stop it and delete its data directory
#
# Rules, first match wins:
#   1. DATABASE_URL (or else SPOOL_DATABASE_URL) is set: print it unchanged.
#   2. A server answers on 127.0.0.1:5432: print
#      postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#   3. Start, or reuse, a throwaway server made from the local PostgreSQL
#      binaries: data in .dev/pg (or /tmp/spool-dev-pg-<uid> when the postgres
#      user cannot reach .dev/pg), listening on 127.0.0.1:55432 only, trust auth.
#
# Environment:
#   SPOOL_PG_PROBE_PORT    port probed by rule 2 (default 5432)
#   SPOOL_DEV_PG_PORT      port of the throwaway server (default 55432)
#   SPOOL_PG_BINDIR        PostgreSQL bin directory (default: the newest found)
#   SPOOL_PG_STARTED_FILE  when set and this run started the throwaway server,
#                          its data directory is written to this file, so the
#                          caller knows to run "pg-ensure.sh stop" afterwards
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# runuser lives in sbin, which a root shell reached through sudo or su may
# not have on PATH.
PATH=$PATH:/usr/sbin:/sbin

probe_port=${SPOOL_PG_PROBE_PORT:-5432}
dev_port=${SPOOL_DEV_PG_PORT:-55432}

# Where a throwaway server may live, in order of preference.
bases=("$SPOOL_ROOT/.dev/pg" "/tmp/spool-dev-pg-$(id -u)")

main() {
	case ${1:-} in
	'') ensure ;;
	stop) stop ;;
	destroy) destroy ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2 ;;
	*) die "unknown command '$1' (want: stop, destroy or nothing)" ;;
	esac
}

ensure() {
	if [[ -n ${DATABASE_URL:-} ]]; then
		log "using DATABASE_URL"
		printf '%s\n' "$DATABASE_URL"
		return
	fi
	if [[ -n ${SPOOL_DATABASE_URL:-} ]]; then
		log "using SPOOL_DATABASE_URL"
		printf '%s\n' "$SPOOL_DATABASE_URL"
		return
	fi

	if server_answers "$probe_port"; then
		local url="postgres://postgres@127.0.0.1:$probe_port/postgres?sslmode=disable"
		log "using the PostgreSQL server on 127.0.0.1:$probe_port"
		check_login "$url"
		printf '%s\n' "$url"
		return
	fi
	log "nothing answers on 127.0.0.1:$probe_port; using a throwaway server"
	throwaway
}

# server_answers PORT succeeds when a PostgreSQL on 127.0.0.1:PORT accepts
# connections (or, without pg_isready, when the port is open).
server_answers() {
	local isready rc i
	if ! isready=$(pg_client pg_isready); then
		tcp_open 127.0.0.1 "$1"
		return
	fi
	for i in 1 2 3 4 5 6 7 8 9 10; do
		rc=0
		"$isready" -q -h 127.0.0.1 -p "$1" -t 3 || rc=$?
		# 1 means "rejecting connections": starting up or shutting down.
		[[ $rc -eq 1 ]] || break
		[[ $i -gt 1 ]] || log "the server on 127.0.0.1:$1 is not accepting connections yet; waiting up to 10 s"
		sleep 1
	done
	[[ $rc -eq 0 ]]
}

# check_login URL warns when psql cannot log in without a password.
check_login() {
	local psql err
	psql=$(pg_client psql) || return 0
	if ! err=$(PGCONNECT_TIMEOUT=5 "$psql" -X -w -Atq -c 'select 1' "$1" 2>&1 >/dev/null); then
		log "warning: cannot log in as user postgres without a password: ${err%%$'\n'*}"
		log "warning: set DATABASE_URL (or TEST_DATABASE_URL for tests) to a URL with credentials"
	fi
}

# as_pg runs a command as the user that owns the throwaway server: "postgres"
# when we are root (initdb and pg_ctl refuse root), else ourselves. It runs
# from / because postgres may not be allowed into the current directory.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

throwaway() {
	local base data bindir pid want=

	# Reuse a server that is already running from one of our directories.
	for base in "${bases[@]}"; do
		if pid=$(running_pid "$base/data"); then
			local port
			port=$(sed -n 4p "$base/data/postmaster.pid")
			log "reusing the throwaway PostgreSQL in $base/data (pid $pid, port $port)"
			[[ $port == "$dev_port" ]] || log "note: it listens on $port, not SPOOL_DEV_PG_PORT=$dev_port"
			print_dev_url "$port"
			return
		fi
	done

	[[ -n $(pg_bindirs) ]] || no_binaries
	check_user
	base=$(choose_base)
	data=$base/data
	if [[ -s $data/PG_VERSION ]]; then
		want=$(cat "$data/PG_VERSION")
	fi
	bindir=$(choose_bindir "$want")

	if tcp_open 127.0.0.1 "$dev_port"; then
		die "port $dev_port is taken by a server this script did not start; choose another with SPOOL_DEV_PG_PORT=<port>"
	fi

	if [[ -z $want ]]; then
		log "creating a PostgreSQL $(pg_major "$bindir") data directory in $data"
		rm -rf "$data"
		as_pg "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$base/initdb.log" 2>&1 ||
			{
				tail -n 20 "$base/initdb.log" >&2
				die "initdb failed (log: $base/initdb.log)"
			}
	fi

	log "starting PostgreSQL on 127.0.0.1:$dev_port (data $data, log $base/log)"
	if ! as_pg "$bindir/pg_ctl" -D "$data" -l "$base/log" -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $dev_port -k '$base' -c fsync=off -c full_page_writes=off" start >&2; then
		tail -n 20 "$base/log" >&2 || true
		die "could not start PostgreSQL (log: $base/log)"
	fi
	if [[ -n ${SPOOL_PG_STARTED_FILE:-} ]]; then
		printf '%s\n' "$data" >"$SPOOL_PG_STARTED_FILE"
	fi
	print_dev_url "$dev_port"
}

print_dev_url() {
	printf 'postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable\n' "$1"
}

# running_pid DATADIR prints the PID of the postmaster running from DATADIR,
# or fails. It trusts postmaster.pid only if that process is a postgres.
running_pid() {
	local pid comm
	[[ -f $1/postmaster.pid ]] || return 1
	pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || [[ -d /proc/$pid ]] || return 1
	if [[ -r /proc/$pid/comm ]]; then
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	elif have ps; then
		comm=$(ps -o comm= -p "$pid" 2>/dev/null) || return 1
	else
		comm=postgres # nothing to check it against; trust the pid file
	fi
	[[ $comm == *postgres* || $comm == *postmaster* ]] || return 1
	printf '%s\n' "$pid"
}

check_user() {
	if [[ $EUID -eq 0 ]]; then
		id -u postgres >/dev/null 2>&1 ||
			die "running as root, but there is no 'postgres' user to own the server (initdb refuses root); create one (useradd --system postgres) or run as a normal user"
		have runuser || die "running as root, but runuser (util-linux) is missing"
	fi
}

# choose_base prints the first candidate directory the server user can
# write to (a root-only 0700 parent directory rules out .dev/pg, for example).
# Unix socket paths are limited to ~107 bytes, so long paths are skipped too.
choose_base() {
	local base
	for base in "${bases[@]}"; do
		if [[ ${#base} -gt 80 ]]; then
			log "$base is too long a path for the server's Unix socket; skipping it"
			continue
		fi
		if [[ $base == *"'"* ]]; then
			log "$base contains a quote; skipping it"
			continue
		fi
		if [[ -L $base ]]; then
			log "$base is a symbolic link; skipping it"
			continue
		fi
		if [[ $base == "$SPOOL_ROOT/"* && ! -d $SPOOL_ROOT/.dev ]]; then
			mkdir -m 755 "$SPOOL_ROOT/.dev"
		fi
		mkdir -p "$base" 2>/dev/null || continue
		if [[ $EUID -eq 0 ]]; then
			chown postgres: "$base" || continue
		fi
		chmod 700 "$base" || continue
		if as_pg test -w "$base" -a -x "$base"; then
			[[ $base == "${bases[0]}" ]] ||
				log "the postgres user cannot reach ${bases[0]} (a parent directory is closed to it), so the data lives in $base"
			printf '%s\n' "$base"
			return
		fi
	done
	die "no usable directory for the throwaway server's data (tried: ${bases[*]})"
}

# choose_bindir [MAJOR] prints the bin directory to use: the best one found,
# or one of version MAJOR when an existing data directory needs it.
choose_bindir() {
	local d first=
	while IFS= read -r d; do
		[[ -n $first ]] || first=$d
		if [[ -z $1 || $(pg_major "$d") == "$1" ]]; then
			printf '%s\n' "$d"
			return
		fi
	done < <(pg_bindirs)
	[[ -n $first ]] || no_binaries
	die "the data directory was made by PostgreSQL $1, but only PostgreSQL $(pg_major "$first") is installed; run 'scripts/pg-ensure.sh destroy' to start afresh"
}

no_binaries() {
	log "no PostgreSQL found: nothing answers on 127.0.0.1:$probe_port and no server programs (initdb, pg_ctl, postgres) are installed."
	log "Install them:"
	log "  Debian/Ubuntu:  apt-get install postgresql   (the programs land in /usr/lib/postgresql/<version>/bin)"
	log "  macOS:          brew install postgresql@15"
	log "or point DATABASE_URL (TEST_DATABASE_URL for tests) at a server you have."
	exit 1
}

stop() {
	local base pid stopped=0 bindir i
	for base in "${bases[@]}"; do
		pid=$(running_pid "$base/data") || continue
		log "stopping the throwaway PostgreSQL (pid $pid, data $base/data)"
		if bindir=$(choose_bindir "$(cat "$base/data/PG_VERSION" 2>/dev/null)" 2>/dev/null) &&
			as_pg "$bindir/pg_ctl" -D "$base/data" -m fast -w -t 60 stop >&2; then
			stopped=1
			continue
		fi
		# No pg_ctl of the right version: a fast shutdown is SIGINT.
		kill -INT "$pid" 2>/dev/null || true
		for i in $(seq 1 60); do
			running_pid "$base/data" >/dev/null || break
			sleep 1
		done
		running_pid "$base/data" >/dev/null && die "PostgreSQL (pid $pid) did not stop within 60 s"
		stopped=1
	done
	[[ $stopped -eq 1 ]] || log "no throwaway PostgreSQL is running; nothing to stop"
}

destroy() {
	local base
	stop
	for base in "${bases[@]}"; do
		if [[ -d $base && ! -L $base ]]; then
			log "deleting $base"
			rm -rf "$base"
		fi
	done
}

main "$@"
