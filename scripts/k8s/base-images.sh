#!/usr/bin/env bash
# Creates local stand-ins for the two base images the Dockerfiles name, so
# `podman build --pull=never --network none` works with no registry:
#   golang:1.26                                 busybox + this machine's Go toolchain
#                                               (enough for CGO_ENABLED=0 builds)
#   gcr.io/distroless/static-debian12:nonroot   /etc/passwd with nonroot (65532),
#                                               CA bundle, tzdata, /tmp; no shell
# Each is made only when missing (podman image exists); --force remakes both.
# With network access to the registries you do not need this: podman/docker
# pull the real images.
# Needs: podman, busybox-static (/bin/busybox), go, /etc/ssl/certs/ca-certificates.crt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}

go_image=${GO_IMAGE:-golang:1.26}
runtime_image=${RUNTIME_IMAGE:-gcr.io/distroless/static-debian12:nonroot}
force=false
[[ ${1:-} == --force ]] && force=true

log() { printf 'base-images: %s\n' "$*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if $force || ! podman image exists "$go_image"; then
	goroot=$(go env GOROOT)
	gov=$(go env GOVERSION)
	[[ $gov == go1.26* ]] || { log "host Go is $gov; $go_image needs go1.26.x"; exit 1; }
	busybox=/bin/busybox # static: from the busybox-static package
	[[ -x $busybox ]] || { log "need $busybox (apt-get install busybox-static)"; exit 1; }
	r=$tmp/go
	mkdir -p "$r/bin" "$r/usr/local" "$r/tmp" "$r/go" "$r/root" "$r/etc/ssl/certs"
	chmod 1777 "$r/tmp" "$r/go"
	cp "$busybox" "$r/bin/busybox"
	for a in sh ls cat env mkdir rm cp mv ln chmod true; do ln -s busybox "$r/bin/$a"; done
	cp -a "$goroot" "$r/usr/local/go"
	cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
	printf 'root:x:0:\n' >"$r/etc/group"
	log "importing $go_image ($gov from $goroot)"
	tar -C "$r" --numeric-owner -cf - . | podman import -q \
		--change 'ENV PATH=/go/bin:/usr/local/go/bin:/bin' \
		--change 'ENV GOPATH=/go' --change 'ENV GOTOOLCHAIN=local' \
		--change 'WORKDIR /go' - "$go_image" >/dev/null
fi

if $force || ! podman image exists "$runtime_image"; then
	r=$tmp/distroless
	mkdir -p "$r/etc/ssl/certs" "$r/tmp" "$r/home/nonroot" "$r/root" "$r/usr/share"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$r/etc/group"
	cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
	cp -a /usr/share/zoneinfo "$r/usr/share/"
	chmod 1777 "$r/tmp"
	chown 65532:65532 "$r/home/nonroot"
	chmod 700 "$r/root"
	log "importing $runtime_image"
	tar -C "$r" --numeric-owner -cf - . | podman import -q \
		--change 'USER 65532' --change 'WORKDIR /home/nonroot' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
		- "$runtime_image" >/dev/null
fi
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "golang|distroless" >&2 || true
