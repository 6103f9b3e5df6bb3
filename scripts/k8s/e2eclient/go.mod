// Helper program of scripts/k8s/e2e.sh (make e2e-k8s): load and checks
// against a Spool install on a real cluster. A module of its own, standard
// library only, so the services' module (go vet ./..., go test ./...) never
// builds it and gains no dependencies.
module github.com/spoolq/spool/scripts/k8s/e2eclient

go 1.26.0
