# End-to-end test on a real Kubernetes cluster (docs/kubernetes.md, "End-to-end
# test on a real cluster"). Opt-in: needs root and ../shared/k8s-local (a
# single-node cluster built from the Go module proxy); not part of `make test`.
# Included by the top Makefile (-include mk/*.mk).

.PHONY: e2e-k8s

e2e-k8s: ## opt-in, root: helm install/test, http jobs to a receiver pod + the custom worker pool, scale, rollouts, SIGTERM, Prometheus, upgrade, uninstall on a real cluster
	scripts/k8s/e2e.sh
