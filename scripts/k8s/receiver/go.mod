// Webhook receiver of scripts/k8s/e2e.sh (make e2e-k8s): the destination of
// the http kind's jobs on the local cluster. A module of its own, standard
// library only, built into a FROM-scratch image by ../shared/k8s-local/image.sh.
module github.com/spoolq/spool/scripts/k8s/receiver

go 1.26.0
