#!/usr/bin/env bash
# Builds the API and worker images from Dockerfile.api and Dockerfile.worker,
# and the example custom worker from examples/customworker/Dockerfile (context:
# the repository root, limited by its own Dockerfile.dockerignore), unchanged,
# with podman, offline and hermetically:
#   --pull=never     base images must exist locally (base-images.sh makes
#                    stand-ins when they are missing)
#   --network none   no network inside the build; the host's module cache is
#                    mounted at /go/pkg/mod (filled first with go mod download)
#                    and its build cache at /root/.cache/go-build
#   --no-cache --layers=false
#                    no stale layers from builds with other mounts, and no
#                    intermediate images left behind (so no prune is needed)
# Usage: scripts/k8s/images.sh [TAG]        (default: dev; VERSION env stamps the binaries)
# Produces localhost/spool-api:TAG, localhost/spool-worker:TAG and
# localhost/spool-shop-worker:TAG.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}
tag=${1:-dev}
version=${VERSION:-dev}

scripts/k8s/base-images.sh
go mod download
go -C examples/customworker mod download

build() { # NAME DOCKERFILE [podman build args...]
	local name=$1 file=$2 start
	shift 2
	start=$(date +%s)
	podman build --pull=never --no-cache --layers=false --network none \
		-v "$(go env GOMODCACHE)":/go/pkg/mod \
		-v "$(go env GOCACHE)":/root/.cache/go-build \
		--build-arg VERSION="$version" "$@" \
		-f "$file" -t "localhost/$name:$tag" .
	printf 'images: localhost/%s:%s built in %ss\n' "$name" "$tag" "$(($(date +%s) - start))" >&2
}
build spool-api Dockerfile.api
build spool-worker Dockerfile.worker
# podman 4 does not look for <Dockerfile>.dockerignore itself (BuildKit does).
build spool-shop-worker examples/customworker/Dockerfile \
	--ignorefile examples/customworker/Dockerfile.dockerignore
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'spool-(api|worker|shop-worker):' >&2
