#!/usr/bin/env bash
# Builds a PostgreSQL image offline, with no registry, from the Debian
# postgresql-15 packages installed on this machine: a stand-in for the
# official image the chart's bundled database defaults to
# (docker.io/library/postgres:17-alpine), honouring the same interface
# (scripts/k8s/postgres/docker-entrypoint.sh): postgres is uid/gid 70 as in
# the Alpine image, ENTRYPOINT docker-entrypoint.sh, CMD postgres, PGDATA and
# POSTGRES_* variables, /docker-entrypoint-initdb.d. The chart runs it with a
# read-only root filesystem (writes go to PGDATA, /var/run/postgresql, /tmp).
#
# Contents: /usr/lib/postgresql/15 (bin, lib; without the LLVM JIT provider,
# so JIT is off) and /usr/share/postgresql/15, the shared libraries they link
# (ldd), the C.UTF-8 locale, tzdata, busybox for the entrypoint's shell.
# Made only when missing (podman image exists); --force remakes it.
# Usage: scripts/k8s/postgres-image.sh [--force]   (POSTGRES_IMAGE, default localhost/spool-e2e-postgres:15)
# Needs: podman, postgresql-15 and postgresql-client-15, busybox-static.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}
image=${POSTGRES_IMAGE:-localhost/spool-e2e-postgres:15}
force=false
[[ ${1:-} == --force ]] && force=true
log() { printf 'postgres-image: %s\n' "$*" >&2; }
if ! $force && podman image exists "$image"; then
	log "$image exists"
	exit 0
fi
pg=/usr/lib/postgresql/15
[[ -x $pg/bin/postgres && -x $pg/bin/psql && -x $pg/bin/pg_isready ]] ||
	{ log "need $pg/bin/{postgres,psql,pg_isready} (apt-get install postgresql-15 postgresql-client-15)"; exit 1; }
[[ -x /bin/busybox ]] || { log "need /bin/busybox (apt-get install busybox-static)"; exit 1; }
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r=$tmp/rootfs
mkdir -p "$r/bin" "$r/usr/lib/postgresql" "$r/usr/share/postgresql" "$r/usr/local/bin" "$r/usr/lib/locale" \
	"$r/etc" "$r/tmp" "$r/var/lib/postgresql/data" "$r/var/run/postgresql" "$r/docker-entrypoint-initdb.d" "$r/usr/share"
cp -a "$pg" "$r/usr/lib/postgresql/15"
rm -rf "$r/usr/lib/postgresql/15/lib/llvmjit"* "$r/usr/lib/postgresql/15/lib/bitcode"
cp -a /usr/share/postgresql/15 "$r/usr/share/postgresql/15"
cp -a /usr/share/zoneinfo "$r/usr/share/zoneinfo"
[[ -d /usr/lib/locale/C.utf8 ]] && cp -a /usr/lib/locale/C.utf8 "$r/usr/lib/locale/"
# Every shared library the binaries and modules link, at the same paths.
libs=$(find "$r/usr/lib/postgresql/15" -type f \( -perm -u+x -o -name '*.so' \) -print0 |
	{ xargs -0 ldd 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for l in $libs /lib/x86_64-linux-gnu/libnss_files.so.2; do
	[[ -e $l ]] || continue
	mkdir -p "$r$(dirname "$l")"
	cp -L "$l" "$r$l"
done
# /lib64 -> the loader, as on Debian (usrmerge: /lib and /lib64 are links to /usr/lib*)
for d in lib lib64; do
	if [[ -L /$d ]]; then
		[[ -e $r/$d ]] || ln -s "$(readlink /$d)" "$r/$d"
	fi
done
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [[ $a == busybox || -e $r/bin/$a ]] || ln -s busybox "$r/bin/$a"; done
install -m 0755 "$root/scripts/k8s/postgres/docker-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:70:70:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\npostgres:x:70:\n' >"$r/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
chmod 1777 "$r/tmp"
chown -R 70:70 "$r/var/lib/postgresql" "$r/var/run/postgresql"
chmod 3777 "$r/var/run/postgresql"
log "importing $image from $("$pg/bin/postgres" --version)"
tar -C "$r" --numeric-owner -cf - . | podman import -q \
	--change "ENV PATH=$pg/bin:/usr/local/bin:/bin" \
	--change 'ENV LANG=C.UTF-8' \
	--change 'ENV PGDATA=/var/lib/postgresql/data' \
	--change 'USER 70' \
	--change 'STOPSIGNAL SIGINT' \
	--change 'EXPOSE 5432' \
	--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
	--change 'CMD ["postgres"]' \
	- "$image" >/dev/null
log "$image built in $(($(date +%s) - start))s: $(podman image ls --format '{{.Size}}' "$image")"
