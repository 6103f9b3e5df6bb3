#!/usr/bin/env bash
# End-to-end test of the Helm chart and both images on a real single-node
# Kubernetes cluster (`make e2e-k8s`; opt-in, needs root; not part of make test).
#
#   1. cluster up (../shared/k8s-local/up.sh, KUBE_PROXY=1), a Service-name
#      DNS for pods (e2eclient dns; k8s-local has no CoreDNS); `make images`,
#      the PostgreSQL stand-in (postgres-image.sh, Debian postgresql-15),
#      the e2e-v2 API/worker images (+ test migration scripts/k8s/upgrade/),
#      the webhook receiver; all imported into the node's containerd
#   2. a hostPath PersistentVolume for the bundled database's claim; helm
#      install with default values + scripts/k8s/local-values.yaml (images,
#      pull policy only); migrations (initContainers), helm test; helm
#      upgrade to scripts/k8s/e2e-values.yaml, helm test; delete of the
#      database pod: same data after, no API/worker restart
#   2b. http kind and a custom worker pool (shop), then removed again
#   3. 5,000 noop/sleep jobs; scale to 4, rollout restart, scale to 1,
#      force-delete the last worker while it runs jobs
#   4. every job completed; re-runs explained; no overlap; clean shutdowns
#   5. Prometheus (file_sd of the pod IPs) against the database
#   5b. crashes while jobs run: SIGKILL of a worker's process and of the
#      postmaster, by host PID from `ctr tasks ls`; rescue within lease +
#      grace + rescue interval, acknowledged jobs all present, no restarts
#   6. helm upgrade to image tag e2e-v2 (+ a migration adding a column)
#      under 5,000 jobs: old and new workers side by side, nothing lost;
#      helm uninstall leaves only the database's claim (deleted with its PV)
#   7. cluster down (down.sh --purge), host state compared with before
#
# Everything is torn down by an EXIT trap, also on failure or Ctrl-C.
# Environment (defaults):
#   K8S_LOCAL        ../shared/k8s-local    the cluster scripts
#   K8S_LOCAL_DIR    /tmp/k8s-local         their state (binaries, etcd, containerd)
#   E2E_NAMESPACE    spool
#   E2E_JOBS         5000                   first wave
#   E2E_WAVE2_JOBS   5000                   jobs running through helm upgrade to the new image tag
#   E2E_CRASH_JOBS   1200                   jobs enqueued across the worker and database SIGKILLs (phase 5b)
#   E2E_HTTP_JOBS    20                     http jobs to the webhook receiver (phase 2b)
#   E2E_ARTIFACTS    /tmp/spool-e2e-<time>  logs, watch stream, Prometheus data, summary
#   E2E_TIMEOUT      3600                   seconds for the whole run
#   E2E_PROM_PORT    19391                  Prometheus on 127.0.0.1
#   E2E_KEEP_DB=1    keep the PersistentVolume's directory;  E2E_KEEP_CLUSTER=1  leave the cluster up
#   E2E_STOP_AFTER   (none)                 stop after the named step (e.g. 2-helm-install-test), for iterating
#   HELM             helm binary (default: the Helm v4 pinned in tools/go.mod)
# shellcheck disable=SC2317 # functions run from traps
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$root"

K8S_LOCAL=${K8S_LOCAL:-$root/../shared/k8s-local}
NS=${E2E_NAMESPACE:-spool}
JOBS=${E2E_JOBS:-5000}
WAVE2=${E2E_WAVE2_JOBS:-5000}
HTTP_JOBS=${E2E_HTTP_JOBS:-20}
RUN_ID=$(date +%Y%m%d-%H%M%S)
ART=${E2E_ARTIFACTS:-/tmp/spool-e2e-$RUN_ID}
TIMEOUT=${E2E_TIMEOUT:-3600}
PROM_PORT=${E2E_PROM_PORT:-19391}
IMAGE_TAG=dev
RELEASE=spool
SHOP_IMAGE=localhost/spool-shop-worker:$IMAGE_TAG
RECEIVER_IMAGE=localhost/spool-e2e-receiver:e2e
POSTGRES_IMAGE=localhost/spool-e2e-postgres:15 # postgresql.image in scripts/k8s/local-values.yaml
# Every helm install/upgrade: the local cluster's images (local-values.yaml),
# then, after the default install, the test's settings and the run's file.
LOCAL_VALUES=(-f scripts/k8s/local-values.yaml)
E2E_VALUES=(-f scripts/k8s/local-values.yaml -f scripts/k8s/e2e-values.yaml -f "$ART/run-values.yaml")
PV_DIR=$ART/pv-postgresql # the hostPath of the bundled PostgreSQL's PersistentVolume
DNS_PORT=53
WEBHOOK_SECRET_NAME=spool-e2e-webhook # kinds.http.webhookSecret in scripts/k8s/e2e-values.yaml
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/ci/containers.conf}

T0=$(date +%s.%N)
now() { date +%s.%N; }
ts() { date +%H:%M:%S; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%s +%ss] %s\n' "$(ts)" "$(elapsed "$T0")" "$*"; }
die() {
	say "FAIL: $*"
	exit 1
}

# ---------- summary and timings ----------
mkdir -p "$ART"/{logs,prometheus,images}
SUMMARY=$ART/summary.txt
PHASES=$ART/phases.txt
: >"$SUMMARY"
: >"$PHASES"
note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
declare -A step_t0
STEP=""
step() { # step NAME: start a timed step (ends the previous one)
	if [[ -n ${E2E_STOP_AFTER:-} && $STEP == "$E2E_STOP_AFTER" ]]; then
		note "E2E_STOP_AFTER=$STEP: stopped after that step (a partial run, for iterating)"
		exit 0
	fi
	step_end
	STEP=$1
	step_t0[$1]=$(now)
	echo
	say "=== $1"
}
step_end() {
	[[ -n $STEP ]] || return 0
	printf '%s %s %s\n' "$STEP" "${step_t0[$STEP]}" "$(now)" >>"$PHASES"
	STEP=""
}
# Sub-phases (the pod checker names each deletion after the phase it fell in).
phase() { # phase NAME CMD...: run CMD, record NAME start/end; CMD's status
	local name=$1 t rc=0
	shift
	t=$(now)
	"$@" || rc=$?
	printf '%s %s %s\n' "$name" "$t" "$(now)" >>"$PHASES"
	say "$name done in $(elapsed "$t")s (exit $rc)"
	return "$rc"
}

# ---------- tools ----------
[[ $(id -u) == 0 ]] || die "needs root (the cluster is real: kubelet, containerd, iptables)"
[[ -d $K8S_LOCAL && -x $K8S_LOCAL/up.sh ]] || die "k8s-local scripts not found at $K8S_LOCAL (set K8S_LOCAL)"
# shellcheck source=/dev/null
source "$K8S_LOCAL/common.sh" # K8S_BIN_DIR, STATE, CTR_SOCK, KUBECONFIG_ADMIN, NODE_IP, running()
die() { # (common.sh has its own)
	say "FAIL: $*"
	exit 1
}
for c in podman ctr psql jq curl prometheus promtool go base64 ss iptables-save; do
	command -v "$c" >/dev/null || die "missing $c (apt-get install -y podman buildah runc busybox-static postgresql-client jq curl prometheus containerd runc containernetworking-plugins etcd-server iptables socat openssl)"
done
[[ -x /bin/busybox ]] || die "missing /bin/busybox (apt-get install busybox-static)"
if [[ ! -x $K8S_BIN_DIR/kubelet || ! -x $K8S_BIN_DIR/kubectl ]]; then
	say "k8s binaries missing in $K8S_BIN_DIR: running $K8S_LOCAL/build.sh (10-15 min the first time)"
	"$K8S_LOCAL/build.sh"
fi
KUBECTL=$K8S_BIN_DIR/kubectl
export KUBECONFIG=$KUBECONFIG_ADMIN
k() { "$KUBECTL" --request-timeout=30s "$@"; }
kn() { k -n "$NS" "$@"; }
if [[ -z ${HELM:-} ]]; then
	say "building/locating Helm (tools/go.mod; minutes the first time)"
	HELM=$(go -C "$root/tools" tool -n helm)
fi
helm() { "$HELM" --kubeconfig "$KUBECONFIG" "$@"; }
E2EC=$ART/e2eclient
(cd "$root/scripts/k8s/e2eclient" && CGO_ENABLED=0 go build -o "$E2EC" .)
# The bundled PostgreSQL from the host: the URL of the chart's Secret
# <release>-database (role spool, not a superuser), its host name replaced by
# the Service's ClusterIP (set once the release is installed: db_url_host).
# Spool's tables live in the schema database.schema (default spool, as the
# e2e values leave it); the shop's (phase 2b) in public.
DB_SCHEMA=spool
db_url_host=""
psql_db() { PGOPTIONS="-c search_path=$DB_SCHEMA,public" psql -X -v ON_ERROR_STOP=1 -q -At "$db_url_host" "$@"; }

# wait_until SECONDS DESC CMD...: poll CMD every second.
wait_until() {
	local secs=$1 desc=$2 i
	shift 2
	for ((i = 0; i < secs; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 1
	done
	die "timed out after ${secs}s waiting for $desc"
}

# Checks record their failure and the run goes on, so one run shows every
# problem; setup failures (die) stop it.
FAILED=()
fail_check() {
	FAILED+=("$1")
	note "CHECK FAILED: $1"
}
# run_check NAME CMD...: an e2eclient check (exit 1: checks failed, 2: error);
# its output goes to $ART/check-NAME.txt and its ok/FAIL lines to the summary.
run_check() {
	local name=$1 out=$ART/check-$1.txt rc=0
	shift
	"$@" >"$out" 2>&1 || rc=$?
	cat "$out"
	grep -E '^ *(ok|FAIL):' "$out" | sed "s/^ */$name: /" >>"$SUMMARY" || true
	if ((rc == 1)); then
		fail_check "$name (see $out)"
	elif ((rc != 0)); then
		die "$name: e2eclient error (exit $rc, see $out)"
	fi
}

# ---------- teardown (always) ----------
BG_PIDS=()
CLUSTER_STARTED=0
PV_CREATED=0
RESULT=FAIL
teardown() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	step_end
	echo
	say "=== teardown (exit status so far: $rc)"
	touch "$ART/stop-collector"
	if ((rc != 0)) && [[ $CLUSTER_STARTED == 1 ]] && running kube-apiserver; then
		kn get pods -o wide >"$ART/pods-at-failure.txt" 2>&1
		kn get events --sort-by=.lastTimestamp >"$ART/events-at-failure.txt" 2>&1
		say "pods and events at failure: $ART/pods-at-failure.txt, $ART/events-at-failure.txt"
	fi
	# Only processes this run started, by PID, and only while they still are
	# ours: our shell's live jobs, and the collectors' kubectl processes
	# (checked by command line, as their PIDs may have been reused).
	local live
	live=" $(jobs -p | tr '\n' ' ') "
	for p in "${BG_PIDS[@]}"; do [[ $live == *" $p "* ]] && kill "$p" 2>/dev/null; done
	if [[ -f $ART/followers.pids ]]; then
		while read -r p; do
			[[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == "$KUBECTL -n $NS "* ]] && kill "$p" 2>/dev/null
		done <"$ART/followers.pids"
	fi
	for p in "${BG_PIDS[@]}"; do [[ $live == *" $p "* ]] && wait "$p" 2>/dev/null; done
	# The jobs' table lives in the cluster (the bundled PostgreSQL): read it before the cluster goes.
	if [[ -n $db_url_host ]]; then
		psql_db -c "\\copy (select id, type, status, attempts, worker_id, created_at, started_at, finished_at, errors from spool_jobs where jsonb_array_length(errors) > 0 or status <> 'completed' order by id) to '$ART/jobs-not-clean.csv' csv header" 2>/dev/null &&
			say "jobs with errors or unfinished: $ART/jobs-not-clean.csv"
	fi
	if [[ $CLUSTER_STARTED == 1 && ${E2E_KEEP_CLUSTER:-0} != 1 ]]; then
		local t down_rc=0
		t=$(now)
		"$K8S_LOCAL/down.sh" --purge >"$ART/down.log" 2>&1 || down_rc=$?
		say "cluster down (down.sh --purge) in $(elapsed "$t")s, rc=$down_rc (log $ART/down.log)"
		printf 'cluster-down %s %s\n' "$t" "$(now)" >>"$PHASES"
		if ((down_rc != 0)); then
			tail -n 20 "$ART/down.log"
			fail_check "cluster down: $K8S_LOCAL/down.sh --purge exited $down_rc (log $ART/down.log)"
		fi
		host_snapshot >"$ART/host-after.txt"
		if diff "$ART/host-before.txt" "$ART/host-after.txt" >"$ART/host-diff.txt"; then
			note "host restored: ip_forward, kubelet sysctls, bridge, Service route, KUBE-* iptables chains, CNI netns, kubepods cgroups, mounts, listeners as before the run"
		else
			note "HOST NOT RESTORED (before/after differ):"
			sed 's/^/    /' "$ART/host-diff.txt" | tee -a "$SUMMARY"
			((rc == 0)) && rc=1
		fi
	elif [[ $CLUSTER_STARTED == 1 ]]; then
		say "E2E_KEEP_CLUSTER=1: cluster left up (KUBECONFIG=$KUBECONFIG; $K8S_LOCAL/down.sh --purge to stop)"
	fi
	# The PersistentVolume's directory (the cluster is down, or kept with E2E_KEEP_CLUSTER=1).
	if [[ $PV_CREATED == 1 && ${E2E_KEEP_CLUSTER:-0} != 1 && ${E2E_KEEP_DB:-0} != 1 ]]; then
		rm -rf "$PV_DIR" && say "removed the PersistentVolume's directory $PV_DIR"
	fi
	((rc == 0 && ${#FAILED[@]} > 0)) && rc=1
	((rc == 0)) && RESULT=PASS
	print_summary "$rc"
	exit "$rc"
}
print_summary() {
	echo
	echo "==================== make e2e-k8s summary ===================="
	printf 'result: %s (exit %s) in %ss; artifacts: %s\n' "$RESULT" "$1" "$(elapsed "$T0")" "$ART"
	echo "timings:"
	awk '{ printf "  %-24s %7.1fs\n", $1, $3 - $2 }' "$PHASES"
	echo "results:"
	sed 's/^/  /' "$SUMMARY"
	if ((${#FAILED[@]} > 0)); then
		echo "failed checks (${#FAILED[@]}):"
		printf '  - %s\n' "${FAILED[@]}"
	fi
	echo "=============================================================="
}
trap teardown EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated (timeout?)"; exit 143' TERM
# Watchdog: the whole run is bounded. (Short sleeps, so killing the loop
# leaves no long-lived child behind.)
(
	end=$((SECONDS + TIMEOUT))
	while ((SECONDS < end)); do
		sleep 2
		kill -0 $$ 2>/dev/null || exit 0
	done
	echo "e2e: E2E_TIMEOUT=${TIMEOUT}s reached" >&2
	kill -TERM $$
) &
BG_PIDS+=($!)

# ---------- host state before/after ----------
host_snapshot() {
	local key
	echo "ip_forward=$(sysctl -n net.ipv4.ip_forward)"
	for key in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
		echo "$key=$(sysctl -n "$key")"
	done
	echo "bridge_$BRIDGE=$(ip link show "$BRIDGE" >/dev/null 2>&1 && echo present || echo absent)"
	echo "route_$SERVICE_CIDR=$(ip route show "$SERVICE_CIDR" | wc -l)"
	echo "iptables_KUBE_chains=$(iptables-save 2>/dev/null | grep -c '^:KUBE-' || true)"
	echo "cni_netns=$(find /var/run/netns -maxdepth 1 -name 'cni-*' 2>/dev/null | wc -l)"
	echo "kubepods_cgroups=$(find /sys/fs/cgroup -maxdepth 2 -name kubepods 2>/dev/null | wc -l)"
	echo "mounts_under_state=$(awk -v s="$STATE" 'index($2, s) == 1' /proc/self/mounts | wc -l)"
	# the cluster's listeners (etcd, apiserver, controllers, kubelet, kube-proxy, the PG forward, our Prometheus)
	echo "listeners=$(ss -Hltn | awk '{ print $4 }' | grep -E "(:(2379|2380|6443|10248|10249|10250|10256|10257|10259|$PROM_PORT)|^$NODE_IP:5432)$" | sort | tr '\n' ' ')"
}

# =====================================================================
step "1-cluster-images-db"
if running kube-apiserver || running kubelet; then
	die "a k8s-local cluster is already running under $K8S_LOCAL_DIR; stop it ($K8S_LOCAL/down.sh) first: this test owns the cluster it starts and tears it down"
fi
host_snapshot >"$ART/host-before.txt"
CLUSTER_STARTED=1
t=$(now)
KUBE_PROXY=1 "$K8S_LOCAL/up.sh" >"$ART/up.log" 2>&1 || {
	tail -n 20 "$ART/up.log"
	die "up.sh failed (log $ART/up.log)"
}
say "cluster up (KUBE_PROXY=1 up.sh) in $(elapsed "$t")s: $(k version -o json | jq -r '.serverVersion.gitVersion'), node $(k get nodes -o jsonpath='{.items[0].metadata.name}') Ready"
# Cluster DNS, which k8s-local lacks (no CoreDNS): the chart's default
# install names its database by Service name (<release>-postgresql.<ns>.svc).
# `e2eclient dns` answers Service names only (ClusterIPs, headless Services'
# pod IPs), from kubectl, on the node IP; every other name is NXDOMAIN, so
# pods still resolve nothing outside the cluster. The kubelet (no clusterDNS
# configured) gives pods its resolv.conf, read again for every new pod: it
# points there from now on, before any pod exists.
"$E2EC" dns -listen "$NODE_IP:$DNS_PORT" -kubectl "$KUBECTL" >"$ART/dns.log" 2>&1 &
BG_PIDS+=($!)
dns_up() { grep -q 'dns: serving' "$ART/dns.log"; }
wait_until 30 "the Service-name DNS on $NODE_IP:$DNS_PORT (log $ART/dns.log)" dns_up
printf 'nameserver %s\nsearch svc.cluster.local cluster.local\noptions ndots:5\n' "$NODE_IP" >"$STATE/resolv.conf"
say "Service-name DNS on $NODE_IP:$DNS_PORT (e2eclient dns); the kubelet's resolv.conf ($STATE/resolv.conf) points pods at it"

t=$(now)
timeout 1800 make -C "$root" --no-print-directory images IMAGE_TAG=$IMAGE_TAG >"$ART/images.log" 2>&1 || {
	tail -n 30 "$ART/images.log"
	die "make images failed (log $ART/images.log)"
}
say "make images in $(elapsed "$t")s: $(grep -E '^images: ' "$ART/images.log" | tr '\n' ' ')"
# helm test's shell image: busybox from the host's busybox-static.
bb=$(mktemp -d)
mkdir -p "$bb/bin" "$bb/tmp"
chmod 1777 "$bb/tmp"
cp /bin/busybox "$bb/bin/busybox"
for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$bb/bin/$a"; done
podman image exists localhost/spool-e2e-busybox:e2e ||
	tar -C "$bb" --numeric-owner -cf - . | podman import -q --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - localhost/spool-e2e-busybox:e2e >/dev/null
rm -rf "$bb"
t=$(now)
scripts/k8s/postgres-image.sh >"$ART/postgres-image.log" 2>&1 || {
	cat "$ART/postgres-image.log"
	die "building the PostgreSQL image failed"
}
say "PostgreSQL stand-in $POSTGRES_IMAGE (Debian postgresql-15, scripts/k8s/postgres-image.sh) in $(elapsed "$t")s: $(tail -n 1 "$ART/postgres-image.log")"
# Phase 6's new image tag: the same API and worker sources plus a test
# migration that adds a column (scripts/k8s/upgrade/*.up.sql), built from a
# copy of the build context so the tree itself never changes.
V2_TAG=e2e-v2
t=$(now)
v2src=$ART/src-v2
mkdir -p "$v2src"
tar -C "$root" -cf - go.mod go.sum .dockerignore Dockerfile.api Dockerfile.worker services shared examples/orders | tar -C "$v2src" -xf -
cp scripts/k8s/upgrade/*.up.sql "$v2src/shared/postgres/migrations/"
V2_MIGRATION=$(basename scripts/k8s/upgrade/*.up.sql .up.sql)
for name in spool-api spool-worker; do
	file=Dockerfile.${name#spool-}
	podman build --pull=never --no-cache --layers=false --network none \
		-v "$(go env GOMODCACHE)":/go/pkg/mod -v "$(go env GOCACHE)":/root/.cache/go-build \
		--build-arg VERSION="$V2_TAG" -f "$v2src/$file" -t "localhost/$name:$V2_TAG" "$v2src" >>"$ART/images-v2.log" 2>&1 || {
		tail -n 30 "$ART/images-v2.log"
		die "building localhost/$name:$V2_TAG failed (log $ART/images-v2.log)"
	}
done
rm -rf "$v2src"
say "images localhost/spool-{api,worker}:$V2_TAG (+ migration $V2_MIGRATION) built in $(elapsed "$t")s"
for img in localhost/spool-api:$IMAGE_TAG localhost/spool-worker:$IMAGE_TAG "$SHOP_IMAGE" localhost/spool-e2e-busybox:e2e "$POSTGRES_IMAGE" \
	"localhost/spool-api:$V2_TAG" "localhost/spool-worker:$V2_TAG"; do
	tar=$ART/images/$(echo "$img" | tr '/:' '__').tar
	rm -f "$tar"
	podman save --format docker-archive -o "$tar" "$img" >/dev/null 2>&1
	ctr --address "$CTR_SOCK" -n k8s.io images import "$tar" >/dev/null
	rm -f "$tar"
	imported=$(ctr --address "$CTR_SOCK" -n k8s.io images ls -q)
	grep -qx "$img" <<<"$imported" || die "$img not in containerd after import"
done
# The webhook receiver: a static Go binary in a FROM-scratch image (k8s-local's image.sh imports it).
"$K8S_LOCAL/image.sh" scripts/k8s/receiver "$RECEIVER_IMAGE" >"$ART/receiver-image.log" 2>&1 || {
	cat "$ART/receiver-image.log"
	die "building the receiver image failed"
}
grep -qx "$RECEIVER_IMAGE" <<<"$(ctr --address "$CTR_SOCK" -n k8s.io images ls -q)" || die "$RECEIVER_IMAGE not in containerd after image.sh"
say "images imported into containerd (podman save | ctr -n k8s.io images import; the receiver by image.sh): $(ctr --address "$CTR_SOCK" -n k8s.io images ls -q | grep -E 'spool' | tr '\n' ' ')"

cat >"$ART/run-values.yaml" <<EOF
# generated by scripts/k8s/e2e.sh for run $RUN_ID
EOF

# ---------- collectors: pod watch, logs, containerd exits, Prometheus targets ----------
k create namespace "$NS" >/dev/null
(
	while [[ ! -e $ART/stop-collector ]]; do
		"$KUBECTL" -n "$NS" get pods -w --output-watch-events -o json >>"$ART/pods-watch.json" 2>>"$ART/pods-watch.err" &
		echo $! >>"$ART/followers.pids"
		wait $! || sleep 1
	done
) &
BG_PIDS+=($!)
ctr --address "$CTR_SOCK" events >"$ART/containerd-events.txt" 2>&1 &
BG_PIDS+=($!)
TARGETS=$ART/prometheus/targets.json
echo '[]' >"$TARGETS"
collector() {
	local json followed=" " pod tmp=$ART/prometheus/.targets.tmp
	while [[ ! -e $ART/stop-collector ]]; do
		if json=$("$KUBECTL" -n "$NS" get pods -o json 2>/dev/null); then
			# Prometheus targets: Running api/worker pods (terminating ones too, until their container stops)
			jq -c '[.items[] | select(.status.phase == "Running" and .status.podIP != null)
				| select((.metadata.labels["app.kubernetes.io/component"] // "") | test("^(api|worker)$"))
				| {targets: [.status.podIP + ":9090"], labels: {pod: .metadata.name, namespace: .metadata.namespace,
					component: .metadata.labels["app.kubernetes.io/component"]}}] | sort_by(.labels.pod)' <<<"$json" >"$tmp" &&
				{ cmp -s "$tmp" "$TARGETS" || mv "$tmp" "$TARGETS"; }
			# follow each pod's log from its start (kubectl logs -f ends when the container does)
			for pod in $(jq -r '.items[] | select(any(.status.containerStatuses[]?; .state.running != null or .state.terminated != null)) | .metadata.name' <<<"$json"); do
				[[ $followed == *" $pod "* ]] && continue
				followed+="$pod "
				"$KUBECTL" -n "$NS" logs -f "$pod" >"$ART/logs/$pod.log" 2>"$ART/logs/$pod.err" &
				echo $! >>"$ART/followers.pids"
			done
		fi
		sleep 1
	done
}
collector &
BG_PIDS+=($!)

cat >"$ART/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 15s
scrape_configs:
  # Debian's Prometheus has no kubernetes_sd_configs: the script writes the
  # pod IPs of the release's api and worker pods into this file every second.
  - job_name: spool
    file_sd_configs:
      - files: ["$TARGETS"]
        refresh_interval: 2s
EOF
promtool check config "$ART/prometheus/prometheus.yml" >/dev/null
if (exec 3<>"/dev/tcp/127.0.0.1/$PROM_PORT") 2>/dev/null; then die "127.0.0.1:$PROM_PORT is in use (set E2E_PROM_PORT)"; fi
PROM=http://127.0.0.1:$PROM_PORT
PROM_T0=$(date +%s)
prometheus --config.file="$ART/prometheus/prometheus.yml" --storage.tsdb.path="$ART/prometheus/data" \
	--storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$PROM_PORT" >"$ART/prometheus/prometheus.log" 2>&1 &
BG_PIDS+=($!)
wait_until 60 "Prometheus ready" curl -sf "$PROM/-/ready"
say "Prometheus $(prometheus --version 2>&1 | awk 'NR == 1 { print $3 }') on $PROM, file_sd $TARGETS, scrape interval 1s"

# =====================================================================
step "2-helm-install-test"
# The plain manifests (k8s/, what `kubectl apply -k k8s/` creates) against
# the real API server: a server-side dry run validates every object and runs
# admission without creating anything. Their namespace is renamed so nothing
# collides with the release; the bundled PostgreSQL is among them (its image
# cannot be pulled here, so it is checked, not run).
MANIFEST_NS=spool-manifests-dryrun
k create namespace "$MANIFEST_NS" >/dev/null
if "$KUBECTL" kustomize k8s/ | awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/(^|\n)kind: Namespace\n/' | sed "s/^\( *namespace:\) spool\$/\1 $MANIFEST_NS/" |
	k apply --dry-run=server -f - >"$ART/manifests-dryrun.log" 2>&1; then
	note "k8s/ plain manifests: accepted by the API server (apply --dry-run=server): $(grep -c 'server dry run' "$ART/manifests-dryrun.log") objects"
else
	fail_check "k8s/ plain manifests refused by the API server (apply --dry-run=server): $(tr '\n' ' ' <"$ART/manifests-dryrun.log")"
fi
k delete namespace "$MANIFEST_NS" --wait=false >/dev/null

# The http kind's destination (phase 2b), up before the install: the signing
# Secret the chart names (kinds.http.webhookSecret), and a receiver that
# verifies with the same Secret. The allow list holds only the receiver
# Service's ClusterIP (/32): every other private address stays refused.
WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
kn create secret generic "$WEBHOOK_SECRET_NAME" --from-literal=webhook-secret="$WEBHOOK_SECRET" >/dev/null
kn apply -f - >"$ART/receiver-apply.log" 2>&1 <<EOF || {
apiVersion: apps/v1
kind: Deployment
metadata:
  name: spool-e2e-receiver
  labels: {app.kubernetes.io/name: spool-e2e-receiver, app.kubernetes.io/component: e2e-receiver}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: spool-e2e-receiver}
  template:
    metadata:
      labels: {app.kubernetes.io/name: spool-e2e-receiver, app.kubernetes.io/component: e2e-receiver}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 5
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
        - name: receiver
          image: $RECEIVER_IMAGE
          imagePullPolicy: Never
          env:
            - name: WEBHOOK_SECRET
              valueFrom: {secretKeyRef: {name: $WEBHOOK_SECRET_NAME, key: webhook-secret}}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          resources: {limits: {memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: spool-e2e-receiver
  labels: {app.kubernetes.io/name: spool-e2e-receiver, app.kubernetes.io/component: e2e-receiver}
spec:
  selector: {app.kubernetes.io/name: spool-e2e-receiver}
  ports: [{name: http, port: 8080, targetPort: http}]
EOF
	cat "$ART/receiver-apply.log"
	die "creating the webhook receiver failed"
}
RECV_CIP=$(kn get svc spool-e2e-receiver -o jsonpath='{.spec.clusterIP}')
[[ -n $RECV_CIP ]] || die "no ClusterIP for the receiver Service"
RECEIVER=http://$RECV_CIP:8080
cat >>"$ART/run-values.yaml" <<EOF
kinds:
  http:
    # only the receiver Service's ClusterIP (phase 2b); the Secret is named in e2e-values.yaml
    allowedHosts: ["$RECV_CIP/32"]
EOF
say "webhook receiver: Deployment + Service spool-e2e-receiver ($RECEIVER), Secret $WEBHOOK_SECRET_NAME; kinds.http.allowedHosts [$RECV_CIP/32]"
# The bundled PostgreSQL's claim (data-<release>-postgresql-0, the chart's
# default size, no storage class: the cluster has none) binds to a hostPath
# PersistentVolume on the node, made here in place of a provisioner. The
# directory belongs to uid/gid 70, the image's postgres (fsGroup does not
# apply to hostPath volumes).
PG_STS=$RELEASE-postgresql
PG_POD=$PG_STS-0
PVC=data-$PG_POD
PV_NAME=spool-e2e-postgresql
mkdir -p "$PV_DIR"
chown 70:70 "$PV_DIR"
chmod 700 "$PV_DIR"
PV_CREATED=1
k apply -f - >"$ART/pv-apply.log" 2>&1 <<EOT || {
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $PV_NAME
  labels: {app.kubernetes.io/name: spool-e2e-postgresql}
spec:
  capacity: {storage: 8Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: $NS, name: $PVC}
  hostPath: {path: "$PV_DIR", type: Directory}
EOT
	cat "$ART/pv-apply.log"
	die "creating the PersistentVolume failed"
}
say "PersistentVolume $PV_NAME: hostPath $PV_DIR (uid 70, 0700), 8Gi, reserved for claim $NS/$PVC"

# The README's install: default values (bundled PostgreSQL, persistence on)
# plus only the local cluster's images and pull policy.
t=$(now)
helm install "$RELEASE" ./helm/spool -n "$NS" "${LOCAL_VALUES[@]}" \
	--wait --timeout 5m >"$ART/helm-install.log" 2>&1 || {
	cat "$ART/helm-install.log"
	die "helm install failed"
}
INSTALL_S=$(elapsed "$t")
say "helm install --wait (default values + scripts/k8s/local-values.yaml): deployed in ${INSTALL_S}s (helm $("$HELM" version --short 2>/dev/null || "$HELM" version))"
kn get sts,deploy,svc,pvc,pods -o wide | sed 's/^/    /'
pg_cip=$(kn get svc "$PG_STS" -o jsonpath='{.spec.clusterIP}')
db_url_pod=$(kn get secret "$RELEASE-database" -o jsonpath='{.data.DATABASE_URL}' | base64 -d)
[[ -n $pg_cip && $db_url_pod == postgres://* ]] || die "no ClusterIP for $PG_STS or no DATABASE_URL in Secret $RELEASE-database"
db_url_host=$(sed -E "s#@[^@/:]+:5432/#@$pg_cip:5432/#" <<<"$db_url_pod")
pod_db_host=$(sed -E 's#^.*@([^@/:]+):5432/.*$#\1#' <<<"$db_url_pod")
wait_until 60 "the bundled PostgreSQL through its ClusterIP $pg_cip" psql_db -c 'select 1'
migrated=$(psql_db -c 'select max(version) from spool_schema_migrations')
[[ -n $migrated ]] || die "no migrations applied in the bundled PostgreSQL"
pvc_state=$(kn get pvc "$PVC" -o jsonpath='{.status.phase} {.spec.volumeName}')
[[ $pvc_state == "Bound $PV_NAME" ]] || fail_check "claim $PVC: '$pvc_state', want Bound to $PV_NAME"
[[ -s $PV_DIR/pgdata/PG_VERSION ]] || fail_check "no database in the PersistentVolume's directory ($PV_DIR/pgdata/PG_VERSION)"
role=$(psql_db -c "select rolname || ' superuser=' || rolsuper || ' createdb=' || rolcreatedb || ' createrole=' || rolcreaterole from pg_roles where rolname = current_user")
[[ $role == *"superuser=false createdb=false createrole=false" ]] || fail_check "Spool's role is not the init script's unprivileged role: $role"
pg_version=$(psql_db -c 'show server_version')
# Migrations run as the `migrate` initContainer of the API and worker pods
# with the bundled database (migrations.mode auto; a pre-install hook would
# run before the database exists).
migrate_inits() { { jq -r 'select(any(.object.status.initContainerStatuses[]?; .name == "migrate" and .state.terminated.exitCode == 0)) | .object.metadata.uid' "$ART/pods-watch.json" 2>/dev/null || true; } | sort -u | wc -l; }
has_migrate_init() { (($(migrate_inits) > 0)); }
wait_until 30 "a migrate initContainer that exited 0 in the watch stream" has_migrate_init
# The default install's workers run no kind (diagnosticJobs off, no pools):
# they rescue, prune and schedule, but never poll for jobs (metrics checks).
DEFAULT_WORKERS=$(kn get pods -l app.kubernetes.io/component=worker -o jsonpath='{range .items[*]}{.metadata.name}{","}{end}')
note "default install: helm install -f scripts/k8s/local-values.yaml --wait ${INSTALL_S}s; bundled PostgreSQL $pg_version ($POSTGRES_IMAGE) on claim $PVC $pvc_state (hostPath); pods reach it as $pod_db_host (Service-name DNS); the init script's role: $role; migrations ran as the migrate initContainer of $(migrate_inits) pod(s), schema version $migrated"
t=$(now)
helm test "$RELEASE" -n "$NS" --timeout 5m --logs >"$ART/helm-test-default.log" 2>&1 || {
	cat "$ART/helm-test-default.log"
	die "helm test (default values) failed"
}
grep -E 'Phase:|live|noop' "$ART/helm-test-default.log" | sed 's/^/    /'
note "helm test (default values): passed in $(elapsed "$t")s (a live worker through the API Service; the diagnostic kinds are off by default, so no job)"

TOKEN=$(kn get secret spool-api-tokens -o jsonpath='{.data.SPOOL_API_TOKENS}' | base64 -d | cut -d, -f1 | cut -d: -f1)
[[ -n $TOKEN ]] || die "no token in Secret spool-api-tokens"
export SPOOL_TOKEN=$TOKEN
CIP=$(kn get svc spool-api -o jsonpath='{.spec.clusterIP}')
API=http://$CIP:8080
wait_until 30 "the API through its ClusterIP $API" curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/stats"
code=$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/stats")
[[ $code == 401 ]] || fail_check "GET /v1/stats without a token answered $code, want 401"
say "API Service ClusterIP $API (kube-proxy); token from Secret spool-api-tokens (chart-generated); no token -> $code"

# From here on the test's own settings (diagnostic kinds, 2+2 pods, short
# leases, the http kind's allow list), on the same release and database.
phase e2e-values helm upgrade "$RELEASE" ./helm/spool -n "$NS" "${E2E_VALUES[@]}" \
	--wait --timeout 5m >"$ART/helm-upgrade-e2e-values.log" 2>&1 || {
	cat "$ART/helm-upgrade-e2e-values.log"
	die "helm upgrade to scripts/k8s/e2e-values.yaml failed"
}
# The new workers publish the diagnostic kinds once they run; the test pod
# looks once, so wait for them first.
noop_published() { curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/kinds" | jq -e '[.kinds[] | select(.name == "noop" and ((.workers // []) | length) > 0)] | length > 0' >/dev/null; }
wait_until 60 "the noop kind published by a live worker (GET /v1/kinds)" noop_published
t=$(now)
helm test "$RELEASE" -n "$NS" --timeout 5m --logs >"$ART/helm-test.log" 2>&1 || {
	cat "$ART/helm-test.log"
	die "helm test failed"
}
grep -E 'Phase:|job [0-9]+: completed' "$ART/helm-test.log" | sed 's/^/    /'
grep -qE 'job [0-9]+: completed' "$ART/helm-test.log" || fail_check "helm test (e2e values) passed without running its noop job (log $ART/helm-test.log)"
note "helm test (e2e values): passed in $(elapsed "$t")s (its pod enqueued a noop job through the Service and saw it completed)"

# The data survives the database pod's delete: same schema, same jobs
# (count, digest of id:status:attempts) after the StatefulSet's new pod
# starts on the same claim; API and worker pods ride it out (no restart)
# and run a job again.
db_snapshot() { psql_db -c "select (select max(version) from spool_schema_migrations) || ' ' || count(*) || ' ' || coalesce(md5(string_agg(id || ':' || status || ':' || attempts, ',' order by id)), '-') from spool_jobs"; }
app_restarts() { # NAME=RESTARTS of every API/worker pod not being deleted
	kn get pods -l 'app.kubernetes.io/component in (api,worker)' -o json |
		jq -r '[.items[] | select(.metadata.deletionTimestamp == null) | "\(.metadata.name)=\(.status.containerStatuses[0].restartCount // 0)"] | join(" ")'
}
restarts_grew() { # BEFORE AFTER: the pods (in both) whose container restarted in between
	awk -v b="$1" -v a="$2" 'BEGIN { n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); r[kv[1]] = kv[2] }
		n = split(a, y, " "); for (i = 1; i <= n; i++) { split(y[i], kv, "="); if ((kv[1] in r) && kv[2] > r[kv[1]]) printf "%s: %s -> %s; ", kv[1], r[kv[1]], kv[2] } }'
}
pg_uid() { kn get pod "$PG_POD" -o jsonpath='{.metadata.uid}' 2>/dev/null; }
pg_ready() { [[ $(kn get pod "$PG_POD" -o jsonpath='{.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == "$1 True" ]]; }
pg_new_ready() { local u; u=$(pg_uid) && [[ -n $u && $u != "$1" ]] && pg_ready "$u"; }
snap_before=$(db_snapshot)
restarts_before=$(app_restarts)
uid0=$(pg_uid)
t=$(now)
phase db-pod-delete bash -c "'$KUBECTL' -n '$NS' delete pod '$PG_POD' --wait=true --timeout=120s >'$ART/db-pod-delete.log' 2>&1"
wait_until 180 "a new $PG_POD Ready" pg_new_ready "$uid0"
DB_BACK_S=$(elapsed "$t")
wait_until 60 "the database through its ClusterIP after the pod's delete" psql_db -c 'select 1'
snap_after=$(db_snapshot)
[[ $snap_after == "$snap_before" ]] || fail_check "data changed across the database pod's delete: before '$snap_before', after '$snap_after'"
t=$(now)
helm test "$RELEASE" -n "$NS" --timeout 5m --logs >"$ART/helm-test-after-db-delete.log" 2>&1 || {
	cat "$ART/helm-test-after-db-delete.log"
	fail_check "helm test failed after the database pod's delete (log $ART/helm-test-after-db-delete.log)"
}
grep -qE 'job [0-9]+: completed' "$ART/helm-test-after-db-delete.log" || fail_check "helm test after the database pod's delete ran no noop job (log $ART/helm-test-after-db-delete.log)"
JOB_AFTER_S=$(elapsed "$t")
restarts_after=$(app_restarts)
grew=$(restarts_grew "$restarts_before" "$restarts_after")
[[ -z $grew ]] || fail_check "API/worker containers restarted across the database pod's delete: $grew"
note "database pod delete: $PG_POD deleted (SIGINT: fast shutdown) and back Ready on the same claim in ${DB_BACK_S}s; data kept (schema version, jobs count, digest: $snap_after); API/worker pods not restarted ($restarts_after); helm test (a noop job end to end) passed ${JOB_AFTER_S}s later"


# Prometheus discovers a new target up to ~5 s after the file changes (its
# discovery manager batches updates), so each state is held until every
# running api/worker pod has been scraped at least once: otherwise a pod that
# lives only a few seconds (a rollout's pod removed by the next scale-down)
# takes its counters away unseen.
wait_scraped() {
	local deadline=$((SECONDS + 60)) pods scraped missing=""
	while ((SECONDS < deadline)); do
		pods=$(kn get pods -l 'app.kubernetes.io/component in (api,worker)' --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
		scraped=$(curl -sf "$PROM/api/v1/query" --data-urlencode 'query=max_over_time(up[30m]) == 1' | jq -r '.data.result[].metric.pod' | sort)
		missing=$(comm -23 <(echo "$pods") <(echo "$scraped") | tr '\n' ' ')
		[[ -z ${missing// /} ]] && return 0
		sleep 1
	done
	fail_check "Prometheus did not scrape $missing within 60s"
}
wait_scraped

# =====================================================================
step "2b-http-custom-pool"
# The custom worker (examples/customworker, image $SHOP_IMAGE) as a second
# pool, and http jobs through the API to the receiver. The pool serves the
# queue `shop` only and is removed again at the end of the phase: the later
# phases scale, restart and count the stock pool's pods (label
# app.kubernetes.io/component=worker, which every pool's pods carry).
# The shop's own tables first (`shop-worker migrate`, as the chart runs only
# Spool's migrations): a one-off pod with the pool's image.
kn apply -f - >"$ART/shop-migrate-apply.log" 2>&1 <<EOF || {
apiVersion: v1
kind: Pod
metadata:
  name: spool-e2e-shop-migrate
  labels: {app.kubernetes.io/name: spool-e2e-shop-migrate, app.kubernetes.io/component: e2e-shop-migrate}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext: {runAsNonRoot: true}
  containers:
    - name: migrate
      image: $SHOP_IMAGE
      imagePullPolicy: Never
      args: [migrate]
      env: [{name: DATABASE_URL, valueFrom: {secretKeyRef: {name: $RELEASE-database, key: DATABASE_URL}}}]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
EOF
	cat "$ART/shop-migrate-apply.log"
	die "creating the shop-worker migrate pod failed"
}
kn rollout status deployment/spool-e2e-receiver --timeout=120s >/dev/null || die "the webhook receiver did not become ready"
pod_done() { [[ $(kn get pod "$1" -o jsonpath='{.status.phase}') =~ ^(Succeeded|Failed)$ ]]; }
wait_until 120 "the shop-worker migrate pod to finish" pod_done spool-e2e-shop-migrate
shop_migrate_exit=$(kn get pod spool-e2e-shop-migrate -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')
kn logs spool-e2e-shop-migrate >"$ART/shop-migrate.log" 2>&1 || true
kn delete pod spool-e2e-shop-migrate --wait=false >/dev/null
[[ $shop_migrate_exit == 0 ]] || die "shop-worker migrate exited '$shop_migrate_exit' (log $ART/shop-migrate.log)"
shop_order=$(psql_db -c "INSERT INTO orders (email, total_cents) VALUES ('e2e@example.com', 4200) RETURNING id") || die "cannot insert the shop's order (did shop-worker migrate create orders?)"
cat >"$ART/shop-values.yaml" <<EOF
# generated by scripts/k8s/e2e.sh: the custom worker as a pool of its own
worker:
  pools:
    shop:
      image:
        repository: ${SHOP_IMAGE%:*}
        tag: "${SHOP_IMAGE##*:}"
      queues: shop
      replicaCount: 1
      concurrency: 2
      dbMaxConns: 4
EOF
shop_pods() { kn get pods -l spoolq.github.io/pool=shop -o jsonpath='{range .items[*]}{.metadata.name}{","}{end}'; }
phase shop-pool-up helm upgrade "$RELEASE" ./helm/spool -n "$NS" "${E2E_VALUES[@]}" -f "$ART/shop-values.yaml" \
	--wait --timeout 5m >"$ART/helm-upgrade-shop.log" 2>&1 || {
	cat "$ART/helm-upgrade-shop.log"
	die "helm upgrade adding the shop pool failed"
}
SHOP_PODS=$(shop_pods)
SHOP_PODS=${SHOP_PODS%,}
[[ -n $SHOP_PODS ]] || die "no pod of the shop pool after helm upgrade"
shop_image_run=$(kn get deploy spool-worker-shop -o jsonpath='{.spec.template.spec.containers[0].image}')
wait_scraped
kinds_served=$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/kinds" | jq -c '[.kinds[] | select(.name == "shop.receipt" or .name == "http") | {(.name): .workers}] | add') || kinds_served="(GET /v1/kinds failed)"
note "shop pool: helm upgrade added Deployment spool-worker-shop ($shop_image_run, queue shop), pod $SHOP_PODS; shop-worker migrate pod exited 0; GET /v1/kinds: $kinds_served"
run_check http "$E2EC" http -api "$API" -receiver "$RECEIVER" -n "$HTTP_JOBS" -key-prefix "e2e-$RUN_ID" \
	-refuse "http://169.254.169.254/latest/meta-data/,$API/v1/stats" \
	-shop-order "$shop_order" -shop-pods "$SHOP_PODS" -http-queue shop -out "$ART/http.json"
receipts=$(psql_db -c "SELECT count(*) FROM receipts WHERE order_id = $shop_order") || receipts="(psql failed)"
if [[ $receipts == 1 ]]; then
	note "http: shop.receipt wrote the receipt of order $shop_order (receipts table: 1 row)"
else
	fail_check "http: order $shop_order has $receipts receipt(s) after its shop.receipt job, want 1"
fi
note "http: $(jq -r '"\(.http_jobs | length) http jobs in \(.elapsed_seconds*10|round/10)s, \(.by_status.completed // 0) completed, on \(.by_worker | to_entries | map("\(.key)=\(.value)") | join(" ")); receiver: \(.deliveries) deliveries, \(.sig_ok) signature ok, \(.duplicates | length) duplicate id(s); refused at enqueue: \(.refused | to_entries | map("\(.key) -> \(.value)") | join(", ")); shop.receipt job \(.shop_job) \(.shop_status) on \(.shop_worker)"' "$ART/http.json" 2>/dev/null || echo "(no report: $ART/http.json)")"
# Back to the stock pool only (its pod gets SIGTERM; the pod checks hold it
# to a clean shutdown like every worker), and the receiver goes.
sleep 2 # a last scrape of the shop pod
phase shop-pool-down helm upgrade "$RELEASE" ./helm/spool -n "$NS" "${E2E_VALUES[@]}" \
	--wait --timeout 5m >"$ART/helm-upgrade-noshop.log" 2>&1 || {
	cat "$ART/helm-upgrade-noshop.log"
	die "helm upgrade removing the shop pool failed"
}
no_shop_pods() { [[ -z $(shop_pods) ]]; }
wait_until 120 "the shop pool's pods gone" no_shop_pods
kn delete deploy,svc -l app.kubernetes.io/name=spool-e2e-receiver --wait=true --timeout=60s >/dev/null
say "shop pool removed (helm upgrade without it), receiver deleted"

# =====================================================================
step "3-load-and-disruptions"
"$E2EC" enqueue -api "$API" -n "$JOBS" -batch 1000 -sleep-share 0.5 -min-ms 50 -max-ms 500 -seed 1 \
	-key-prefix "e2e-$RUN_ID-w1" -wave wave1 -ids-out "$ART/ids-wave1.txt" -summary-out "$ART/enqueue-wave1.json"
note "wave 1: $(jq -r '"\(.accepted) jobs (\(.noop) noop, \(.sleep) sleep 50-500 ms) in \(.requests) POST /v1/jobs/batch requests, \(.failed_tries) retried, \(.elapsed_seconds*10|round/10)s"' "$ART/enqueue-wave1.json")"

busy() { # the queue must still be running when a disruption starts
	# /v1/stats may be up to SPOOL_STATS_MAX_AGE (default 2 s) old:
	# a wave just enqueued shows within that, so look for up to 5 s.
	local line end=$((SECONDS + 5))
	until line=$("$E2EC" stats -api "$API" -require-unfinished); do
		((SECONDS < end)) || die "the queue is already drained before '$1' ($line): the disruptions would not hit running work; lower worker.concurrency in scripts/k8s/e2e-values.yaml"
		sleep 0.5
	done
	say "queue before $1: $line"
}
worker_pods() { kn get pods -l app.kubernetes.io/component=worker -o jsonpath='{range .items[*]}{.metadata.name}{" "}{end}'; }
rollout() { "$KUBECTL" -n "$NS" rollout status deployment/spool-worker --timeout="$1" >/dev/null; }

busy "scale-to-4"
phase scale-to-4 bash -c "'$KUBECTL' -n '$NS' scale deployment/spool-worker --replicas=4 >/dev/null"
rollout 180s
wait_scraped
say "workers: $(worker_pods)"
busy "rollout-restart"
phase rollout-restart bash -c "'$KUBECTL' -n '$NS' rollout restart deployment/spool-worker >/dev/null && '$KUBECTL' -n '$NS' rollout status deployment/spool-worker --timeout=300s >/dev/null"
wait_scraped
say "workers: $(worker_pods)"
busy "scale-to-1"
one_pod() { [[ $(kn get pods -l app.kubernetes.io/component=worker -o name | wc -l) == 1 ]]; }
phase scale-to-1 bash -c "'$KUBECTL' -n '$NS' scale deployment/spool-worker --replicas=1 >/dev/null"
wait_until 120 "one worker pod left" one_pod
FORCED=$(worker_pods | tr -d ' ')
[[ -n $FORCED ]] || die "no worker pod to delete"
wait_scraped
busy "force-delete"
# The forced delete must hit a worker with jobs in hand: the database (the
# workers' claims set worker_id) must show jobs running on $FORCED right
# before the delete. Wait for that up to 30 s (the queue is busy, so a
# moment without a running job on it passes quickly).
running_on() { psql_db -c "select count(*) || ' (' || coalesce(string_agg(id::text, ',' order by id), '') || ')' from spool_jobs where status = 'running' and worker_id = '$1'"; }
forced_before=""
for ((i = 0; i < 300; i++)); do
	forced_before=$(running_on "$FORCED") || die "psql: cannot read the jobs running on $FORCED"
	[[ $forced_before == 0\ * ]] || break
	sleep 0.1
done
[[ -n $forced_before && $forced_before != 0\ * ]] ||
	die "worker $FORCED had no running job (database: $forced_before) for 30s before the forced delete: it would not hit running work"
phase force-delete bash -c "'$KUBECTL' -n '$NS' delete pod '$FORCED' --grace-period=0 --force >'$ART/force-delete.log' 2>&1"
forced_after=$(running_on "$FORCED") || forced_after="(psql failed)"
say "force-deleted $FORCED: $(grep -v '^Warning' "$ART/force-delete.log" | tr '\n' ' ')"
note "forced delete of $FORCED while it ran jobs: running on it just before kubectl delete: $forced_before; just after: $forced_after (jobs it could not finish in the kubelet's 2 s come back after its lease expires)"
rollout 180s
wait_scraped
say "replacement ready: $(worker_pods)"
phase drain-wave1 "$E2EC" wait -api "$API" -total $((JOBS + 1)) -timeout 10m

# =====================================================================
step "4-jobs-and-shutdowns"
run_check jobs-wave1 "$E2EC" jobs -api "$API" -ids "$ART/ids-wave1.txt" -forced "$FORCED" -watch "$ART/pods-watch.json" -out "$ART/jobs-wave1.json"
note "wave 1 jobs: $(jq -r '"\(.by_status.completed) of \(.total) completed (\(.expected) enqueued + \(.other_by_type | to_entries | map("\(.value) \(.key)") | join(", ")) from helm test and phase 2b), \(.attempts) attempts; \(.rerun_ids | length) job(s) ran more than once, \(.rerun_by_forced_delete) of them after the forced delete"' "$ART/jobs-wave1.json")"
run_check pods-wave1 "$E2EC" pods -watch "$ART/pods-watch.json" -exits "$ART/containerd-events.txt" -logs "$ART/logs" \
	-phases "$PHASES" -forced "$FORCED" -all-deleted=false

# =====================================================================
step "5-prometheus"
sleep 3 # two more scrapes of the running pods after the last job
run_check metrics-wave1 "$E2EC" metrics -prom "$PROM" -jobs "$ART/jobs-wave1.json" -watch "$ART/pods-watch.json" -since "$PROM_T0" -no-kinds "$DEFAULT_WORKERS"

# =====================================================================
step "5b-crashes"
# Real crashes while jobs run, by the container runtime, not the API server:
# the PID of a container's main process from containerd (`ctr tasks ls`),
# killed with SIGKILL on the host. No SIGTERM, no shutdown code runs.
#   a) a worker: the jobs it held come back after their lease (worker.
#      leaseDuration/rescueInterval are 10s/5s in e2e-values.yaml) and run
#      again, on another pod or on the restarted container; never two
#      attempts at once (checked from the error histories and start times)
#   b) the database (the postmaster, the container's main process: the
#      kernel ends every backend with it; the kubelet restarts the container
#      and PostgreSQL recovers from its WAL): every job the API acknowledged
#      (synchronous_commit on, the default) is there afterwards, and the API
#      and worker pods recover without a restart
# The wave is enqueued across both (20 jobs a second, retried with the same
# idempotency keys while the database is down).
task_pid() { # POD: host PID of the pod's first container's main process
	local cid
	cid=$(kn get pod "$1" -o jsonpath='{.status.containerStatuses[0].containerID}')
	cid=${cid#containerd://}
	[[ -n $cid ]] || return 1
	ctr --address "$CTR_SOCK" -n k8s.io tasks ls | awk -v id="$cid" '$1 == id && $3 == "RUNNING" { print $2 }'
}
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }
dur_s() { # Go duration in seconds (as the chart renders it: 10s, 1m30s)
	awk -v d="$1" 'BEGIN { t = 0; while (match(d, /^[0-9.]+(ms|s|m|h)/)) { u = substr(d, RSTART, RLENGTH); n = u + 0; sub(/^[0-9.]+/, "", u);
		t += (u == "ms" ? n / 1000 : u == "s" ? n : u == "m" ? n * 60 : n * 3600); d = substr(d, RLENGTH + 1) } print t }'
}
LEASE=$(kn get cm spool-worker -o jsonpath='{.data.SPOOL_LEASE_DURATION}')
RESCUE=$(kn get cm spool-worker -o jsonpath='{.data.SPOOL_RESCUE_INTERVAL}')
lease_s=$(dur_s "$LEASE")
rescue_s=$(dur_s "$RESCUE")
# Rescued at most lease + grace (lease/10 + 0.5 s abandon grace) + one rescue
# interval after the kill; 3 s more for the claim and a loaded node.
RESCUE_BOUND=$(awk -v l="$lease_s" -v r="$rescue_s" 'BEGIN { printf "%.1f", l + l / 10 + 0.5 + r + 3 }')
phase crash-scale-to-3 bash -c "'$KUBECTL' -n '$NS' scale deployment/spool-worker --replicas=3 >/dev/null"
rollout 180s
wait_scraped
say "workers: $(worker_pods); lease $LEASE, rescue interval $RESCUE: a killed worker's jobs must be rescued within ${RESCUE_BOUND}s"
CRASH_JOBS=${E2E_CRASH_JOBS:-1200}
# Longer jobs than the other waves (half sleep 200-2000 ms), so the kills hit jobs mid-run.
"$E2EC" enqueue -api "$API" -n "$CRASH_JOBS" -batch 20 -interval 1s -retries 20 -sleep-share 0.5 -min-ms 200 -max-ms 2000 -seed 3 \
	-key-prefix "e2e-$RUN_ID-w3" -wave crashes -ids-out "$ART/ids-crashes.txt" -summary-out "$ART/enqueue-crashes.json" >"$ART/enqueue-crashes.log" 2>&1 &
ENQ3=$!
BG_PIDS+=("$ENQ3")
sleep 5

# --- a) SIGKILL of a worker
VICTIM=$(worker_pods | awk '{ print $1 }')
vpid=$(task_pid "$VICTIM") || die "no containerd task for $VICTIM"
[[ $(cmdline "$vpid") == */spool-worker* ]] || die "PID $vpid of $VICTIM is not spool-worker: $(cmdline "$vpid")"
# Kill the moment the database shows it running a job (up to 30 s). What
# it lost is what stays `running` on it after the kill: its process is gone,
# so nothing of it finishes any more.
KILL_T=""
for ((i = 0; i < 300; i++)); do
	held=$(psql_db -c "select count(*) from spool_jobs where status = 'running' and worker_id = '$VICTIM'")
	if ((held > 0)); then
		KILL_T=$(now)
		kill -KILL "$vpid"
		printf 'kill-worker %s %s\n' "$KILL_T" "$(now)" >>"$PHASES"
		break
	fi
	sleep 0.1
done
[[ -n $KILL_T ]] || die "worker $VICTIM had no running job for 30s: the kill would not hit running work"
victim_jobs=$(psql_db -c "select string_agg(id::text, ',' order by id) from spool_jobs where status = 'running' and worker_id = '$VICTIM'")
[[ -n $victim_jobs ]] || die "worker $VICTIM's $held job(s) finished between the look and the kill (a few ms): nothing to rescue; rerun"
victim_n=$(tr ',' '\n' <<<"$victim_jobs" | wc -l)
say "SIGKILL to $VICTIM's spool-worker (host PID $vpid, from ctr tasks ls) while it ran $victim_n job(s): $victim_jobs"
back() { [[ $(psql_db -c "select count(*) from spool_jobs where id in ($victim_jobs) and status = 'completed'") == "$victim_n" ]]; }
wait_until 120 "$VICTIM's jobs completed again" back
# Per job: when the rescuer took it (its error entry), when the next attempt
# started and ended, where it ran.
psql_db -F ' ' -c "select j.id, j.worker_id, j.attempts,
		extract(epoch from (select (e->>'at')::timestamptz from jsonb_array_elements(j.errors) e
			where e->>'worker_id' = '$VICTIM' and e->>'error' = 'worker lost: lease expired' order by e->>'at' desc limit 1)) - $KILL_T,
		extract(epoch from j.started_at) - $KILL_T, extract(epoch from j.finished_at) - $KILL_T
	from spool_jobs j where j.id in ($victim_jobs) order by j.id" >"$ART/crash-worker-jobs.txt"
sed 's/^/    job /' "$ART/crash-worker-jobs.txt"
read -r rescued max_rescue min_start max_done on_other <<<"$(awk -v v="$VICTIM" '
	$4 != "" { n++; if ($4 > mr) mr = $4 }
	{ if (ms == "" || $5 < ms) ms = $5; if ($6 > md) md = $6; if ($2 != v) o++ }
	END { printf "%d %.1f %.1f %.1f %d\n", n, mr, ms, md, o }' "$ART/crash-worker-jobs.txt")"
((rescued == victim_n)) || fail_check "worker kill: $rescued of $victim_n jobs of $VICTIM have its lost-lease entry (rescued)"
awk -v m="$max_rescue" -v b="$RESCUE_BOUND" 'BEGIN { exit !(m <= b) }' || fail_check "worker kill: rescued up to ${max_rescue}s after the kill, over the bound ${RESCUE_BOUND}s"
awk -v m="$min_start" 'BEGIN { exit !(m > 0) }' || fail_check "worker kill: a re-run started ${min_start}s after the kill, i.e. before it (two at once)"
vrestarts=$(kn get pod "$VICTIM" -o jsonpath='{.status.containerStatuses[0].restartCount}')
[[ $vrestarts == 1 ]] || fail_check "worker kill: $VICTIM's container restarted $vrestarts time(s), want 1"
note "worker SIGKILL: $VICTIM (PID $vpid) held $victim_n running job(s); all $rescued rescued (lost-lease entry) at most ${max_rescue}s after the kill (bound ${RESCUE_BOUND}s = lease $LEASE + grace + rescue interval $RESCUE + 3s), re-run from +${min_start}s, all completed by +${max_done}s; $on_other on another pod, $((victim_n - on_other)) on $VICTIM's restarted container (restarts: $vrestarts)"
WORKER_KILLS="$VICTIM=$KILL_T"

# --- b) SIGKILL of the database
sleep 3
restarts_before=$(app_restarts)
pg_restarts0=$(kn get pod "$PG_POD" -o jsonpath='{.status.containerStatuses[0].restartCount}')
pgpid=$(task_pid "$PG_POD") || die "no containerd task for $PG_POD"
[[ $(cmdline "$pgpid") == postgres* ]] || die "PID $pgpid of $PG_POD is not the postmaster: $(cmdline "$pgpid")"
acked_before=$(wc -l <"$ART/ids-crashes.txt")
kill -0 "$ENQ3" 2>/dev/null || die "the crash wave's enqueue ended before the database kill: no acknowledged writes would be in flight"
DBKILL_T=$(now)
kill -KILL "$pgpid"
printf 'kill-database %s %s\n' "$DBKILL_T" "$(now)" >>"$PHASES"
say "SIGKILL to $PG_POD's postmaster (host PID $pgpid) with $acked_before crash-wave jobs acknowledged so far"
pg_restarted() { [[ $(kn get pod "$PG_POD" -o jsonpath='{.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type=="Ready")].status}') == "$((pg_restarts0 + 1)) True" ]]; }
wait_until 180 "$PG_POD restarted and Ready" pg_restarted
DB_READY_S=$(elapsed "$DBKILL_T")
api_ok() { "$E2EC" stats -api "$API" >/dev/null; }
wait_until 120 "the API answering after the database's restart" api_ok
API_OK_S=$(elapsed "$DBKILL_T")
wait_until 60 "psql through the ClusterIP after the database's restart" psql_db -c 'select 1'
recovery=$(kn logs "$PG_POD" 2>/dev/null | grep -E 'database system was interrupted|redo (starts|done)|ready to accept' | tail -n 3 | sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //' | tr '\n' ';')
wait "$ENQ3" || {
	cat "$ART/enqueue-crashes.log"
	die "the crash wave's enqueue failed"
}
keep=()
for p in "${BG_PIDS[@]}"; do [[ $p == "$ENQ3" ]] || keep+=("$p"); done
BG_PIDS=("${keep[@]}")
cat "$ART/enqueue-crashes.log"
DB_WINDOW_END=$(awk -v t="$DBKILL_T" -v a="$API_OK_S" -v b="$RESCUE_BOUND" 'BEGIN { printf "%.3f", t + a + b }')
DB_CRASH="$DBKILL_T,$DB_WINDOW_END"
restarts_after=$(app_restarts)
grew=$(restarts_grew "$restarts_before" "$restarts_after")
[[ -z $grew ]] || fail_check "database kill: API/worker containers restarted: $grew"
phase drain-crashes "$E2EC" wait -api "$API" -total $((JOBS + CRASH_JOBS + 1)) -timeout 10m
note "database SIGKILL: postmaster PID $pgpid of $PG_POD killed with $acked_before jobs of the wave acknowledged; container restarted by the kubelet, Ready again after ${DB_READY_S}s, the API answering after ${API_OK_S}s; PostgreSQL: $recovery API/worker pods not restarted ($restarts_after)"
note "crash wave: $(jq -r '"\(.accepted) jobs acknowledged \(.first_at[11:19])-\(.last_at[11:19]), \(.requests) requests, \(.failed_tries) retried while the database was down, \(.duplicates) answered duplicate"' "$ART/enqueue-crashes.json")"
run_check jobs-crashes "$E2EC" jobs -api "$API" -ids "$ART/ids-wave1.txt,$ART/ids-crashes.txt" -forced "$FORCED" -killed "$WORKER_KILLS" -db-crash "$DB_CRASH" \
	-watch "$ART/pods-watch.json" -out "$ART/jobs-crashes.json"
note "jobs after the crashes: $(jq -r '"\(.by_status.completed) of \(.total) completed, \(.attempts) attempts; \(.rerun_ids | length) ran more than once: \(.rerun_by_forced_delete) after the forced delete, \(.rerun_by_kill) after the worker SIGKILL, \(.rerun_by_db_crash) after the database SIGKILL; overlaps (two attempts at once): \(.overlaps | length)"' "$ART/jobs-crashes.json")"
PG_KILLED_UID=$(kn get pod "$PG_POD" -o jsonpath='{.metadata.uid}')
KILLED_PODS="$VICTIM,$PG_KILLED_UID"
sleep 3
run_check metrics-crashes "$E2EC" metrics -prom "$PROM" -jobs "$ART/jobs-crashes.json" -watch "$ART/pods-watch.json" -since "$PROM_T0" -killed "$WORKER_KILLS" -no-kinds "$DEFAULT_WORKERS"

# =====================================================================
step "6-upgrade-uninstall"
cfg_before=$(kn get deploy spool-api spool-worker -o jsonpath='{range .items[*]}{.spec.template.metadata.annotations.checksum/config}{" "}{end}')
pods_before=$(kn get pods -l 'app.kubernetes.io/component in (api,worker)' -o name | sort)
token_secret_before=$(kn get secret spool-api-tokens -o jsonpath='{.data.SPOOL_API_TOKENS}')
migrate_before=$(migrate_inits)
# Wave 2 through the upgrade: 250 jobs a second for 20 s, i.e. a queue about
# 100 s deep for two workers (retried with idempotency keys if an API pod
# drains mid-request).
"$E2EC" enqueue -api "$API" -n "$WAVE2" -batch 250 -interval 1s -sleep-share 0.5 -min-ms 50 -max-ms 500 -seed 2 \
	-key-prefix "e2e-$RUN_ID-w2" -wave wave2 -ids-out "$ART/ids-wave2.txt" -summary-out "$ART/enqueue-wave2.json" >"$ART/enqueue-wave2.log" 2>&1 &
ENQ2=$!
BG_PIDS+=("$ENQ2")
# Helm v4 applies server-side: `kubectl scale` (field manager "kubectl",
# subresource scale) owns .spec.replicas now, and a plain upgrade fails with
# "conflict with "kubectl" with subresource "scale" ... .spec.replicas".
# --force-conflicts takes it back (replicas return to worker.replicaCount),
# which is what Helm 3's client-side upgrade did silently.
force=()
upgrade_help=$("$HELM" upgrade --help)
[[ $upgrade_help == *--force-conflicts* ]] && force=(--force-conflicts)
sleep 3
# Like every disruption, the upgrade must hit a busy queue. Wave 2 arrives in
# batches of 25 a second that the workers may finish before the next one, so
# one look could catch a gap: look for up to 5 s, and wave 2 must still be
# being enqueued (it then lasts through the upgrade's start).
kill -0 "$ENQ2" 2>/dev/null || { cat "$ART/enqueue-wave2.log"; die "wave 2's enqueue ended before helm upgrade: the upgrade would not hit running work"; }
busy_within() { # SECONDS NAME: the queue has unfinished jobs at some moment within SECONDS
	local end=$((SECONDS + $1)) line
	while :; do
		line=$("$E2EC" stats -api "$API" -require-unfinished) && break
		((SECONDS < end)) || die "no unfinished job within $1s before '$2' (last: $line): the upgrade would not hit running work"
		sleep 0.2
	done
	say "queue before $2: $line"
}
busy_within 5 "helm-upgrade"
up_t0=$(now)
phase helm-upgrade helm upgrade "$RELEASE" ./helm/spool -n "$NS" "${E2E_VALUES[@]}" \
	--set image.tag="$V2_TAG" --set logging.level=debug "${force[@]}" --wait --timeout 5m >"$ART/helm-upgrade.log" 2>&1 || {
	cat "$ART/helm-upgrade.log"
	die "helm upgrade failed"
}
up_t1=$(now)
wait_scraped
wait "$ENQ2" || {
	cat "$ART/enqueue-wave2.log"
	die "wave 2 enqueue failed"
}
keep=()
for p in "${BG_PIDS[@]}"; do [[ $p == "$ENQ2" ]] || keep+=("$p"); done
BG_PIDS=("${keep[@]}")
cat "$ART/enqueue-wave2.log"
cfg_after=$(kn get deploy spool-api spool-worker -o jsonpath='{range .items[*]}{.spec.template.metadata.annotations.checksum/config}{" "}{end}')
pods_after=$(kn get pods -l 'app.kubernetes.io/component in (api,worker)' -o name | sort)
read -r api_b wrk_b <<<"$cfg_before"
read -r api_a wrk_a <<<"$cfg_after"
[[ $api_b != "$api_a" && $wrk_b != "$wrk_a" ]] || fail_check "checksum/config did not change on both Deployments ($cfg_before -> $cfg_after)"
still=$(comm -12 <(echo "$pods_before") <(echo "$pods_after") | tr '\n' ' ')
[[ -z ${still// /} ]] || fail_check "pods from before the upgrade still run: $still"
[[ $(kn get cm spool-worker -o jsonpath='{.data.SPOOL_LOG_LEVEL}') == debug ]] || fail_check "worker ConfigMap not updated"
for p in $(kn get pods -l 'app.kubernetes.io/component in (api,worker)' -o jsonpath='{range .items[*]}{.metadata.name}{"="}{.metadata.annotations.checksum/config}{" "}{end}'); do
	[[ ${p#*=} == "$api_a" || ${p#*=} == "$wrk_a" ]] || fail_check "pod ${p%%=*} runs an old checksum/config"
done
[[ $(kn get secret spool-api-tokens -o jsonpath='{.data.SPOOL_API_TOKENS}') == "$token_secret_before" ]] || fail_check "the generated API token changed on upgrade"
migrate_after=$(migrate_inits)
((migrate_after > migrate_before)) || fail_check "no new pod ran its migrate initContainer during the upgrade"
up_s=$(awk -v a="$up_t0" -v b="$up_t1" 'BEGIN { printf "%.1f", b - a }')
note "helm upgrade --set image.tag=$V2_TAG --set logging.level=debug ${force[*]} --wait: ${up_s}s; worker replicas back to $(kn get deploy spool-worker -o jsonpath='{.spec.replicas}') (worker.replicaCount); checksum/config changed on spool-api (${api_b:0:12} -> ${api_a:0:12}) and spool-worker (${wrk_b:0:12} -> ${wrk_a:0:12}); every api/worker pod replaced ($(echo "$pods_before" | wc -l) old, $(echo "$pods_after" | wc -l) new); migrations ran again in the new pods' migrate initContainers ($migrate_before -> $migrate_after pods); generated token kept"
# The test migration ran (new pods' initContainers) and the column is there.
v2_version=$(psql_db -c 'select max(version) from spool_schema_migrations')
v2_col=$(psql_db -c "select count(*) from information_schema.columns where table_schema = '$DB_SCHEMA' and table_name = 'spool_jobs' and column_name = 'e2e_upgrade_note'")
[[ $v2_version == "${V2_MIGRATION%%_*}" && $v2_col == 1 ]] || fail_check "upgrade: schema version $v2_version (want ${V2_MIGRATION%%_*}), column spool_jobs.e2e_upgrade_note present: $v2_col"
for p in $(kn get pods -l 'app.kubernetes.io/component in (api,worker)' -o jsonpath='{range .items[*]}{.metadata.name}{"="}{.spec.containers[0].image}{" "}{end}'); do
	[[ ${p#*=} == *":$V2_TAG" ]] || fail_check "upgrade: pod ${p%%=*} runs ${p#*=}, not tag $V2_TAG"
done
# Old and new workers side by side: the watch gives each worker pod's image;
# the database, which pod completed what and when during the rollout.
jq -r 'select(.object.metadata.labels["app.kubernetes.io/component"] == "worker") | "\(.object.metadata.name) \(.object.spec.containers[0].image)"' "$ART/pods-watch.json" | sort -u >"$ART/worker-images.txt"
psql_db -F ' ' -c "select worker_id, count(*), extract(epoch from min(finished_at)), extract(epoch from max(finished_at)) from spool_jobs
	where status = 'completed' and finished_at between to_timestamp($up_t0) and to_timestamp($up_t1) group by worker_id order by 3" >"$ART/upgrade-workers.txt"
read -r old_jobs new_jobs old_last new_first <<<"$(awk -v tag=":$V2_TAG" 'NR == FNR { img[$1] = $2; next }
	{ if (index(img[$1], tag)) { nj += $2; if (nf == "" || $3 < nf) nf = $3 } else { oj += $2; if ($4 > ol) ol = $4 } }
	END { printf "%d %d %s %s\n", oj, nj, ol == "" ? 0 : ol, nf == "" ? 0 : nf }' "$ART/worker-images.txt" "$ART/upgrade-workers.txt")"
overlap_s=$(awk -v a="$old_last" -v b="$new_first" 'BEGIN { printf "%.1f", a - b }')
if ((old_jobs > 0 && new_jobs > 0)) && awk -v o="$overlap_s" 'BEGIN { exit !(o > 0) }'; then
	note "old and new workers side by side during the rollout: $old_jobs jobs completed by $IMAGE_TAG workers and $new_jobs by $V2_TAG workers while helm upgrade ran; the last old-worker completion came ${overlap_s}s after the first new-worker one"
else
	fail_check "upgrade: no moment with old and new workers both completing jobs ($old_jobs old, $new_jobs new, overlap ${overlap_s}s; $ART/upgrade-workers.txt)"
fi
note "test migration $V2_MIGRATION: applied by the new pods' migrate initContainers while the old pods ran (schema version $v2_version, column spool_jobs.e2e_upgrade_note present)"
note "wave 2 during the upgrade: $(jq -r '"\(.accepted) jobs enqueued \(.first_at[11:19])-\(.last_at[11:19])"' "$ART/enqueue-wave2.json") (upgrade ran $(date -d "@${up_t0%.*}" +%H:%M:%S)-$(date -d "@${up_t1%.*}" +%H:%M:%S)), $(jq -r '"\(.requests) requests, \(.failed_tries) retried, \(.duplicates) answered duplicate"' "$ART/enqueue-wave2.json")"
phase drain-wave2 "$E2EC" wait -api "$API" -total $((JOBS + CRASH_JOBS + WAVE2 + 1)) -timeout 10m
run_check jobs-final "$E2EC" jobs -api "$API" -ids "$ART/ids-wave1.txt,$ART/ids-crashes.txt,$ART/ids-wave2.txt" -forced "$FORCED" -killed "$WORKER_KILLS" -db-crash "$DB_CRASH" \
	-watch "$ART/pods-watch.json" -out "$ART/jobs-final.json"
note "all jobs: $(jq -r '"\(.by_status.completed) of \(.total) completed, \(.attempts) attempts, \(.rerun_ids | length) ran more than once (\(.rerun_by_forced_delete) after the forced delete, \(.rerun_by_kill) after the worker SIGKILL, \(.rerun_by_db_crash) after the database SIGKILL), \(.overlaps | length) overlaps"' "$ART/jobs-final.json")"
note "database cross-check (psql): $(psql_db -F ' ' -c "select status, count(*), sum(attempts), count(*) filter (where jsonb_array_length(errors) > 0) from spool_jobs group by status" | awk '{ printf "%s: %s jobs, %s attempts, %s with an error history; ", $1, $2, $3, $4 }')"
sleep 3
run_check metrics-final "$E2EC" metrics -prom "$PROM" -jobs "$ART/jobs-final.json" -watch "$ART/pods-watch.json" -since "$PROM_T0" -killed "$WORKER_KILLS" -no-kinds "$DEFAULT_WORKERS"

phase helm-uninstall helm uninstall "$RELEASE" -n "$NS" --wait --timeout 3m >"$ART/helm-uninstall.log" 2>&1 || {
	cat "$ART/helm-uninstall.log"
	die "helm uninstall failed"
}
no_pods() { [[ -z $(kn get pods -o name) ]]; }
wait_until 120 "every pod of the release gone" no_pods
# the webhook signing Secret the script made for the chart (kinds.http.webhookSecret)
kn delete secret "$WEBHOOK_SECRET_NAME" >/dev/null
# A kubectl or helm failure in these queries fails the check (an empty
# answer would otherwise look like "nothing left"); an empty list passes.
kinds() { # api-resources flags...: every listable kind but events, comma-separated
	local all list
	all=$(k api-resources --verbs=list -o name "$@") || return 1
	list=$(grep -vE '^events' <<<"$all" | paste -sd, -)
	[[ -n $list ]] || return 1
	printf '%s\n' "$list"
}
drop_lines() { # ERE: stdin less matching lines; grep's "nothing left" (1) is fine
	grep -vE "$1" || (($? == 1))
}
leftovers() { # every namespaced kind but events, less what every namespace has
	local ks objs
	ks=$(kinds --namespaced) || return 1
	objs=$(kn get "$ks" -o name) || return 1
	drop_lines "^(serviceaccount/default|configmap/kube-root-ca.crt|persistentvolumeclaim/$PVC)\$" <<<"$objs"
}
labelled_objects() { # anything labelled with the release, in any namespace or cluster-wide
	local ks objs
	ks=$(kinds) || return 1
	objs=$(k get "$ks" -A -l "app.kubernetes.io/instance=$RELEASE" -o name) || return 1
	drop_lines "^persistentvolumeclaim/$PVC\$" <<<"$objs"
}
uninstall_listed=1
left=$(leftovers) || { uninstall_listed=0; fail_check "after helm uninstall: kubectl failed to list the objects in namespace $NS"; }
[[ -z $left ]] || fail_check "objects left in namespace $NS after helm uninstall: $(echo "$left" | tr '\n' ' ')"
labelled=$(labelled_objects) || { uninstall_listed=0; fail_check "after helm uninstall: kubectl failed to list objects labelled app.kubernetes.io/instance=$RELEASE"; }
[[ -z $labelled ]] || fail_check "objects labelled app.kubernetes.io/instance=$RELEASE remain: $(echo "$labelled" | tr '\n' ' ')"
releases=$(helm list -n "$NS" -q) || { uninstall_listed=0; fail_check "after helm uninstall: helm list failed"; }
[[ -z $releases ]] || fail_check "helm still lists a release: $releases"
[[ $uninstall_listed == 0 || -n $left || -n $labelled || -n $releases ]] || note "helm uninstall: nothing left: in namespace $NS only the default ServiceAccount and kube-root-ca.crt ConfigMap that every namespace has (all namespaced kinds listed), no object labelled app.kubernetes.io/instance=$RELEASE in any namespace or cluster-wide, no release"
# A StatefulSet's claims outlive it (helm uninstall leaves them, by design,
# so the data is not lost by accident): the database's claim is still there,
# Bound; the script deletes it and its PersistentVolume.
pvc_left=$(kn get pvc "$PVC" -o jsonpath='{.status.phase}' 2>/dev/null) || pvc_left="gone"
kn delete pvc "$PVC" --wait=true --timeout=60s >/dev/null 2>&1
k delete pv "$PV_NAME" --wait=true --timeout=60s >/dev/null 2>&1
note "after helm uninstall: the database's claim $PVC was kept ($pvc_left), as Kubernetes keeps a StatefulSet's claims; deleted by the script with its PersistentVolume"
kn get events -o json >"$ART/events.json"
warn=$(jq -r '[.items[] | select(.type == "Warning") | .reason] | group_by(.) | map("\(.[0])=\(length)") | join(" ")' "$ART/events.json")
note "warning events in $NS during the run: ${warn:-none}"
# "failed to sync configmap/secret cache" is the kubelet giving up on its
# informer cache before creating a container (seen at install on a loaded
# node); it retries, and no container of ours has run yet. Counted, not failed:
# a pod that never came up fails the install's --wait and the pod checks.
cache=$(jq -r '[.items[] | select(.reason == "Failed" and (.message | test("failed to sync (configmap|secret) cache")))] | length' "$ART/events.json")
[[ $cache == 0 ]] || note "kubelet cache-sync retries before a container started (not counted as bad): $cache"
bad=$(jq -r '[.items[] | select(.reason | test("^(FailedKillPod|OOMKilling|BackOff|Failed|Evicted|FailedCreatePodSandBox|ErrImageNeverPull)$"))
	| select(.reason != "Failed" or (.message | test("failed to sync (configmap|secret) cache") | not))
	| "\(.involvedObject.name): \(.reason) \(.message)"] | join("; ")' "$ART/events.json")
[[ -z $bad ]] || fail_check "bad events: $bad"
touch "$ART/stop-collector"
sleep 2
run_check pods-final "$E2EC" pods -watch "$ART/pods-watch.json" -exits "$ART/containerd-events.txt" -logs "$ART/logs" \
	-phases "$PHASES" -forced "$FORCED" -killed "$KILLED_PODS" -all-deleted=true
grep -E 'force-deleted|pods seen' "$ART/check-pods-final.txt" | sed 's/^ */pods-final: /' >>"$SUMMARY" || true
k delete namespace "$NS" --wait=true --timeout=120s >/dev/null

# =====================================================================
step "7-cluster-down"
# teardown (the EXIT trap) runs down.sh --purge and compares the host with before.
exit 0
