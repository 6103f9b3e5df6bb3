#!/bin/sh
# Entrypoint of the e2e's PostgreSQL stand-in image (scripts/k8s/postgres-image.sh).
# It honours the part of the official postgres image's interface the chart
# uses (helm/spool/templates/postgresql.yaml):
#   PGDATA, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_INITDB_ARGS
#   /docker-entrypoint-initdb.d/*.sh (run if executable, else sourced) and
#   *.sql, once, as POSTGRES_USER against a server on the Unix socket only,
#   when PGDATA has no database yet
#   then exec of the command (default: postgres), so postgres is the
#   container's main process (it gets the signals; a SIGKILL ends the container)
# Runs as any uid with a passwd entry (the image has postgres = 70, as in the
# Alpine image the chart defaults to).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
export PGDATA POSTGRES_USER

if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "docker-entrypoint: POSTGRES_PASSWORD is empty: refusing to initialise $PGDATA" >&2
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	pw=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
	initdb --username="$POSTGRES_USER" --pwfile="$pw" -D "$PGDATA" -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
	rm -f "$pw"
	printf "\n# docker-entrypoint.sh\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf '\n# docker-entrypoint.sh\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	# First start: only the Unix socket, while the init scripts run.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case $f in
		*.sh)
			echo "docker-entrypoint: running $f"
			# shellcheck source=/dev/null # the chart's init scripts
			if [ -x "$f" ]; then "$f"; else . "$f"; fi
			;;
		*.sql)
			echo "docker-entrypoint: running $f"
			psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres -f "$f"
			;;
		*) echo "docker-entrypoint: ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo "docker-entrypoint: PostgreSQL init process complete; ready for start up"
fi
exec "$@"
