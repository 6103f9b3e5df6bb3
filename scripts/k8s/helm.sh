#!/usr/bin/env bash
# Runs the Helm pinned in tools/go.mod (helm.sh/helm/v4, a Go tool), from the
# caller's working directory. The first call on a machine builds it (minutes);
# later calls take about a second.
#   scripts/k8s/helm.sh lint --strict helm/spool
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
helm=$(go -C "$root/tools" tool -n helm)
exec "$helm" "$@"
