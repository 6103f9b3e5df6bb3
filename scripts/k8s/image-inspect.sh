#!/usr/bin/env bash
# Checks the built images' configuration with `podman image inspect`: what
# the Dockerfiles promise and image-test.sh's runs cannot see (they force
# `--user 65532:65532`, as the chart's runAsUser does, so an image without
# USER would still pass them):
#   - User: numeric and non-root, `uid` or `uid:gid` (Kubernetes' runAsNonRoot
#     can only verify a numeric user; an image without USER runs as root);
#   - ExposedPorts: api 8080/tcp (HTTP) and 9090/tcp (admin), worker and the
#     example custom worker (examples/customworker) 9090/tcp;
#   - Entrypoint: exec form, exactly the binary (a shell form would make sh
#     PID 1, which does not pass SIGTERM on, so no graceful shutdown);
#   - label org.opencontainers.image.version: the same on every image and not
#     `dev`, the binaries' unstamped default, so that image-test.sh can check
#     that the binaries report it (that the -ldflags -X stamp took effect).
# Prints that version on stdout. Every violation is reported; exit 1 if any.
# Usage: scripts/k8s/image-inspect.sh [TAG]            (default: dev; api, worker, shop-worker)
#        scripts/k8s/image-inspect.sh API_IMAGE WORKER_IMAGE [SHOP_WORKER_IMAGE]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}
have jq || die "needs jq"
if (($# >= 2)); then
	api_image=$1 worker_image=$2 shop_image=${3:-}
else
	api_image=localhost/spool-api:${1:-dev}
	worker_image=localhost/spool-worker:${1:-dev}
	shop_image=localhost/spool-shop-worker:${1:-dev}
fi

errors=0
bad() {
	log "FAIL: $*"
	errors=$((errors + 1))
}

version_label=org.opencontainers.image.version
versions=()

check() { # IMAGE BINARY PORT...
	local img=$1 bin=$2 cfg user uid gid port entrypoint version
	shift 2
	cfg=$(podman image inspect --format '{{json .Config}}' "$img") || {
		bad "$img: podman image inspect failed (run make images)"
		return
	}
	user=$(jq -r '.User // ""' <<<"$cfg")
	if [[ ! $user =~ ^([0-9]+)(:([0-9]+))?$ ]]; then
		bad "$img: User ${user:-(none)} must be a numeric non-root uid or uid:gid (Dockerfile USER 65532:65532)"
	else
		uid=$((10#${BASH_REMATCH[1]})) gid=${BASH_REMATCH[3]}
		((uid != 0)) || bad "$img: User $user is root"
		[[ -z $gid ]] || ((10#$gid != 0)) || bad "$img: User $user has the root group"
	fi
	for port in "$@"; do
		jq -e --arg p "$port/tcp" '(.ExposedPorts // {}) | has($p)' <<<"$cfg" >/dev/null ||
			bad "$img: ExposedPorts $(jq -c '(.ExposedPorts // {}) | keys' <<<"$cfg") lacks $port/tcp"
	done
	entrypoint=$(jq -c '.Entrypoint' <<<"$cfg")
	[[ $entrypoint == "[\"$bin\"]" ]] ||
		bad "$img: Entrypoint $entrypoint, want the exec form [\"$bin\"]"
	version=$(jq -r --arg l "$version_label" '(.Labels // {})[$l] // ""' <<<"$cfg")
	if [[ -z $version || $version == dev ]]; then
		bad "$img: label $version_label is '${version}': build with a real VERSION (make images stamps git describe), or the binaries' version cannot be told from the unstamped default 'dev'"
	fi
	versions+=("$version")
	log "$img: User=$user ExposedPorts=$(jq -c '(.ExposedPorts // {}) | keys' <<<"$cfg") Entrypoint=$entrypoint version=$version"
}

check "$api_image" /usr/local/bin/spool-api 8080 9090
check "$worker_image" /usr/local/bin/spool-worker 9090
[[ -z $shop_image ]] || check "$shop_image" /usr/local/bin/shop-worker 9090
for v in "${versions[@]}"; do
	[[ $v == "${versions[0]}" ]] || { bad "images carry different versions: ${versions[*]} (api, worker, shop-worker)"; break; }
done
((errors == 0)) || die "$errors problem(s) in the image configuration"
printf '%s\n' "${versions[0]}"
