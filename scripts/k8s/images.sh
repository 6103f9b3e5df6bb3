#!/usr/bin/env bash
# Builds the API and worker images from Dockerfile.api and Dockerfile.worker,
# unchanged, with podman, offline and hermetically:
#   --pull=never     base images must exist locally (base-images.sh makes
#                    stand-ins when they are missing)
#   --network none   no network inside the build; the host's module cache is
#                    mounted at /go/pkg/mod (filled first with go mod download)
#                    and its build cache at /root/.cache/go-build
#   --no-cache --layers=false
#                    no stale layers from builds with other mounts, and no
#                    intermediate images left behind (so no prune is needed)
# Usage: scripts/k8s/images.sh [TAG]        (default: dev; VERSION env stamps the binaries)
# Produces localhost/spool-api:TAG and localhost/spool-worker:TAG.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}
tag=${1:-dev}
version=${VERSION:-dev}

scripts/k8s/base-images.sh
go mod download

for svc in api worker; do
	start=$(date +%s)
	podman build --pull=never --no-cache --layers=false --network none \
		-v "$(go env GOMODCACHE)":/go/pkg/mod \
		-v "$(go env GOCACHE)":/root/.cache/go-build \
		--build-arg VERSION="$version" \
		-f "Dockerfile.$svc" -t "localhost/spool-$svc:$tag" .
	printf 'images: localhost/spool-%s:%s built in %ss\n' "$svc" "$tag" "$(($(date +%s) - start))" >&2
done
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'spool-(api|worker):' >&2
