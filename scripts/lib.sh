# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Source it, do not run it.

# SPOOL_ROOT is the repository root (this file lives in scripts/).
# shellcheck disable=SC2034 # used by the scripts that source this file
SPOOL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

# log writes a line to stderr, prefixed with the calling script's name.
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# die logs its arguments and exits 1.
die() {
	log "$@"
	exit 1
}

# have reports whether a command is on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# tcp_open HOST PORT succeeds when something accepts TCP connections there.
tcp_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	local probe='exec 3<>"/dev/tcp/$1/$2"'
	if have timeout; then
		timeout 3 bash -c "$probe" _ "$1" "$2" 2>/dev/null
	else
		bash -c "$probe" _ "$1" "$2" 2>/dev/null
	fi
}

# pg_bindirs prints the directories that hold PostgreSQL server programs
# (initdb, pg_ctl, postgres), best first: SPOOL_PG_BINDIR if set, then
# Debian/Ubuntu's /usr/lib/postgresql/<version>/bin (newest first), then
# initdb on PATH, then Homebrew's keg-only postgresql@<version> (newest first).
pg_bindirs() {
	local d v
	{
		if [[ -n ${SPOOL_PG_BINDIR:-} ]]; then
			printf '0\t%s\n' "$SPOOL_PG_BINDIR"
		fi
		for d in /usr/lib/postgresql/*/bin; do
			v=${d#/usr/lib/postgresql/}
			printf '1\t%s\t%s\n' "${v%/bin}" "$d"
		done
		if have initdb; then
			d=$(dirname "$(command -v initdb)")
			printf '2\t0\t%s\n' "$d"
		fi
		for d in /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin; do
			v=${d#*postgresql@}
			printf '3\t%s\t%s\n' "${v%/bin}" "$d"
		done
	} | sort -t "$(printf '\t')" -k1,1n -k2,2nr | awk -F '\t' '{ print $NF }' |
		while IFS= read -r d; do
			if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
				printf '%s\n' "$d"
			fi
		done
}

# pg_major DIR prints the major version of the server programs in DIR
# ("15" for 15.18, "9.6" for 9.6.24).
pg_major() {
	local v
	# "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "15.18"
	v=$("$1/postgres" --version 2>/dev/null | awk '{ print $3 }') || return 1
	case $v in
	9.*) printf '%s\n' "${v%.*}" ;;
	[1-9]*) printf '%s\n' "${v%%.*}" ;;
	*) return 1 ;;
	esac
}

# pg_client NAME prints the path of a PostgreSQL client program (psql,
# pg_isready): from PATH, else from a server bin directory.
pg_client() {
	local d
	if have "$1"; then
		command -v "$1"
		return
	fi
	while IFS= read -r d; do
		if [[ -x $d/$1 ]]; then
			printf '%s\n' "$d/$1"
			return
		fi
	done < <(pg_bindirs)
	return 1
}
