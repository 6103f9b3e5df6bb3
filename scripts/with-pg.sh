#!/usr/bin/env bash
# with-pg.sh COMMAND [ARG...]: run COMMAND with TEST_DATABASE_URL set to an
# admin URL of a PostgreSQL server, and exit with COMMAND's status.
#
# A TEST_DATABASE_URL already set is kept as it is. Otherwise the URL comes
# from scripts/pg-ensure.sh, and a throwaway server that pg-ensure.sh started
# for this command is stopped afterwards, also when COMMAND fails or is
# interrupted. (`make test` uses this.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi
if [[ -n ${TEST_DATABASE_URL:-} ]]; then
	exec "$@"
fi

started=$(mktemp "${TMPDIR:-/tmp}/spool-pg-started.XXXXXX")
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [[ -s $started ]]; then
		"$here/pg-ensure.sh" stop || true
	fi
	rm -f "$started"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TEST_DATABASE_URL=$(SPOOL_PG_STARTED_FILE=$started "$here/pg-ensure.sh")
export TEST_DATABASE_URL

rc=0
"$@" || rc=$?
exit "$rc"
