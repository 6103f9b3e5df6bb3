# Kubernetes packaging: images, Helm chart, plain manifests (docs/kubernetes.md).
# Included by the top Makefile (-include mk/*.mk).
#
# Helm v4 is a Go tool pinned in tools/go.mod (separate module, so the
# services' dependency graph stays lean); the first call on a machine builds
# it (about 5 minutes), later calls take a second.

IMAGE_TAG    ?= dev
KUBE_VERSION ?= 1.34.0
# podman/buildah settings for this kind of machine: the scripts use
# ci/containers.conf unless CONTAINERS_CONF is set.

.PHONY: manifests chart-check chart-docs images image-test

manifests: ## render k8s/ from helm/spool (default values)
	KUBE_VERSION=$(KUBE_VERSION) scripts/k8s/render-manifests.sh k8s

# -count=1: the tests read the chart through helm subprocesses, which go
# test's result cache cannot see (files outside tools/ are not tracked).
# Also vets and compiles scripts/k8s/e2eclient (its own standard-library-only
# module, otherwise built only by the opt-in e2e-k8s run; a few seconds).
chart-check: ## helm lint --strict, helm template, strict decode and checks of the chart and k8s/; vet+build the e2e checker
	$(GO) -C scripts/k8s/e2eclient vet ./...
	$(GO) -C scripts/k8s/e2eclient build -o /dev/null .
	$(GO) -C tools test -count=1 ./...

chart-docs: ## regenerate the values table in helm/spool/README.md from values.yaml
	$(GO) -C tools run ./valuesdoc -values $(CURDIR)/helm/spool/values.yaml -readme $(CURDIR)/helm/spool/README.md

images: ## build localhost/spool-api, spool-worker and spool-shop-worker (examples/customworker):IMAGE_TAG (dev) with podman, offline
	VERSION=$(VERSION) scripts/k8s/images.sh $(IMAGE_TAG)

image-test: ## run the images against PostgreSQL: migrate, enqueue, podman stop, exit 0 (after make images)
	scripts/with-pg.sh scripts/k8s/image-test.sh $(IMAGE_TAG)
