#!/usr/bin/env bash
# End-to-end test of the Helm chart and both images on a real single-node
# Kubernetes cluster (`make e2e-k8s`; opt-in, needs root; not part of make test).
#
#   1. cluster up (../shared/k8s-local/up.sh, KUBE_PROXY=1 for the ClusterIP
#      Service); `make images` (api, worker, the custom shop worker) and the
#      webhook receiver (scripts/k8s/receiver), imported into the node's
#      containerd; a fresh database on the host's PostgreSQL
#   2. a webhook receiver Deployment + Service and the signing Secret; helm
#      install spool ./helm/spool with scripts/k8s/e2e-values.yaml (external
#      database at 10.244.0.1:5432, pullPolicy Never, 2 workers, the http
#      kind allowed to the receiver's ClusterIP only); the migration hook Job
#      runs; helm test passes
#   2b. http kind and a custom worker pool: `shop-worker migrate` as a pod;
#      helm upgrade adds the pool `shop` (localhost/spool-shop-worker, queue
#      shop); E2E_HTTP_JOBS http jobs through the API to the receiver (every
#      one completed with status 200, each webhook-id received, every
#      signature verified), destinations outside the allow list refused with
#      422, a shop.receipt job completed on the shop pool's pod; helm upgrade
#      removes the pool again (the later phases count the stock pool's pods)
#   3. 5,000 noop/sleep(50-500 ms) jobs through the API Service (ClusterIP);
#      while they run: scale the workers to 4, rollout restart, scale to 1,
#      force-delete the last worker pod (--grace-period=0 --force) while
#      the database shows jobs running on it
#   4. every job completed; no job ran twice except after the forced delete
#      (error history); every pod that got SIGTERM exited 0 within its grace
#      period and logged a clean shutdown
#   5. Prometheus (Debian's, on the host, file_sd of the pod IPs) scraped the
#      API and every worker pod; per-pod series against the database
#   6. helm upgrade (logging.level=debug) rolls the pods through the checksum
#      annotations while a second wave of 1,000 jobs runs (the queue busy
#      when it starts): nothing lost; helm uninstall leaves no Spool object
#      behind (a failing kubectl/helm query fails the check)
#   7. cluster down (down.sh --purge, which must exit 0), host state
#      compared with before
#
# Everything is torn down by an EXIT trap, also on failure or Ctrl-C.
# Environment (defaults):
#   K8S_LOCAL        ../shared/k8s-local    the cluster scripts
#   K8S_LOCAL_DIR    /tmp/k8s-local         their state (binaries, etcd, containerd)
#   E2E_NAMESPACE    spool
#   E2E_JOBS         5000                   first wave
#   E2E_WAVE2_JOBS   1000                   jobs enqueued during helm upgrade
#   E2E_HTTP_JOBS    20                     http jobs to the webhook receiver (phase 2b)
#   E2E_PG_URL       postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable  (host admin URL)
#   E2E_ARTIFACTS    /tmp/spool-e2e-<time>  logs, watch stream, Prometheus data, summary
#   E2E_TIMEOUT      3600                   seconds for the whole run
#   E2E_PROM_PORT    19391                  Prometheus on 127.0.0.1
#   E2E_KEEP_DB=1    keep the database;  E2E_KEEP_CLUSTER=1  leave the cluster up
#   HELM             helm binary (default: the Helm v4 pinned in tools/go.mod)
# shellcheck disable=SC2317 # functions run from traps
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$root"

K8S_LOCAL=${K8S_LOCAL:-$root/../shared/k8s-local}
NS=${E2E_NAMESPACE:-spool}
JOBS=${E2E_JOBS:-5000}
WAVE2=${E2E_WAVE2_JOBS:-1000}
HTTP_JOBS=${E2E_HTTP_JOBS:-20}
PG_ADMIN=${E2E_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
RUN_ID=$(date +%Y%m%d-%H%M%S)
ART=${E2E_ARTIFACTS:-/tmp/spool-e2e-$RUN_ID}
TIMEOUT=${E2E_TIMEOUT:-3600}
PROM_PORT=${E2E_PROM_PORT:-19391}
IMAGE_TAG=dev
DB=spool_e2e_${RUN_ID//-/_}
RELEASE=spool
SHOP_IMAGE=localhost/spool-shop-worker:$IMAGE_TAG
RECEIVER_IMAGE=localhost/spool-e2e-receiver:e2e
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
psql_admin() { psql -X -v ON_ERROR_STOP=1 -q -At "$PG_ADMIN" "$@"; }
db_url_host=$(printf '%s' "$PG_ADMIN" | sed -E "s#/[^/?]*(\\?|$)#/$DB\\1#")
# Spool's tables live in the schema database.schema (default spool, as the
# e2e values leave it); the shop's (phase 2b) in public.
DB_SCHEMA=spool
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
DB_CREATED=0
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
	if [[ $DB_CREATED == 1 ]]; then
		psql_db -c "\\copy (select id, type, status, attempts, worker_id, created_at, started_at, finished_at, errors from spool_jobs where jsonb_array_length(errors) > 0 or status <> 'completed' order by id) to '$ART/jobs-not-clean.csv' csv header"
		if [[ ${E2E_KEEP_DB:-0} != 1 ]]; then
			psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" && say "dropped database $DB (jobs with errors or unfinished: $ART/jobs-not-clean.csv)"
		fi
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
psql_admin -c 'select 1' >/dev/null || die "cannot reach the host's PostgreSQL at $PG_ADMIN (pods use it through $NODE_IP:5432)"
host_snapshot >"$ART/host-before.txt"
CLUSTER_STARTED=1
t=$(now)
KUBE_PROXY=1 "$K8S_LOCAL/up.sh" >"$ART/up.log" 2>&1 || {
	tail -n 20 "$ART/up.log"
	die "up.sh failed (log $ART/up.log)"
}
say "cluster up (KUBE_PROXY=1 up.sh) in $(elapsed "$t")s: $(k version -o json | jq -r '.serverVersion.gitVersion'), node $(k get nodes -o jsonpath='{.items[0].metadata.name}') Ready"

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
for img in localhost/spool-api:$IMAGE_TAG localhost/spool-worker:$IMAGE_TAG "$SHOP_IMAGE" localhost/spool-e2e-busybox:e2e; do
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

psql_admin -c "CREATE DATABASE $DB"
DB_CREATED=1
DB_URL_POD="postgres://postgres@$NODE_IP:5432/$DB?sslmode=disable"
cat >"$ART/run-values.yaml" <<EOF
# generated by scripts/k8s/e2e.sh for run $RUN_ID
database:
  url: "$DB_URL_POD"
EOF
say "fresh database $DB on the host's PostgreSQL; pods use $DB_URL_POD"

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
t=$(now)
helm install "$RELEASE" ./helm/spool -n "$NS" -f scripts/k8s/e2e-values.yaml -f "$ART/run-values.yaml" \
	--wait --timeout 5m >"$ART/helm-install.log" 2>&1 || {
	cat "$ART/helm-install.log"
	die "helm install failed"
}
INSTALL_S=$(elapsed "$t")
say "helm install --wait: deployed in ${INSTALL_S}s (helm $("$HELM" version --short 2>/dev/null || "$HELM" version))"
kn get deploy,svc,pods -o wide | sed 's/^/    /'
migrated=$(psql_db -c 'select max(version) from spool_schema_migrations')
[[ -n $migrated ]] || die "no migrations applied in $DB"
migrate_pods() { { jq -r 'select(.object.metadata.labels["app.kubernetes.io/component"] == "migrate") | .object.metadata.uid' "$ART/pods-watch.json" 2>/dev/null || true; } | sort -u | wc -l; }
has_migrate_pod() { (($(migrate_pods) > 0)); }
wait_until 30 "the migrate hook pod in the watch stream" has_migrate_pod
note "install: helm install --wait ${INSTALL_S}s; pre-install hook Job spool-migrate ran (schema version $migrated in $DB; the Job is deleted on success)"
t=$(now)
helm test "$RELEASE" -n "$NS" --timeout 5m --logs >"$ART/helm-test.log" 2>&1 || {
	cat "$ART/helm-test.log"
	die "helm test failed"
}
grep -E 'Phase:|job [0-9]+: completed' "$ART/helm-test.log" | sed 's/^/    /'
note "helm test: passed in $(elapsed "$t")s (its pod enqueued a noop job through the Service and saw it completed)"

TOKEN=$(kn get secret spool-api-tokens -o jsonpath='{.data.SPOOL_API_TOKENS}' | base64 -d | cut -d, -f1 | cut -d: -f1)
[[ -n $TOKEN ]] || die "no token in Secret spool-api-tokens"
export SPOOL_TOKEN=$TOKEN
CIP=$(kn get svc spool-api -o jsonpath='{.spec.clusterIP}')
API=http://$CIP:8080
wait_until 30 "the API through its ClusterIP $API" curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/stats"
code=$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/stats")
[[ $code == 401 ]] || fail_check "GET /v1/stats without a token answered $code, want 401"
say "API Service ClusterIP $API (kube-proxy); token from Secret spool-api-tokens (chart-generated); no token -> $code"

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
      env: [{name: DATABASE_URL, value: "$DB_URL_POD"}]
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
phase shop-pool-up helm upgrade "$RELEASE" ./helm/spool -n "$NS" -f scripts/k8s/e2e-values.yaml -f "$ART/run-values.yaml" -f "$ART/shop-values.yaml" \
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
phase shop-pool-down helm upgrade "$RELEASE" ./helm/spool -n "$NS" -f scripts/k8s/e2e-values.yaml -f "$ART/run-values.yaml" \
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
	local line
	line=$("$E2EC" stats -api "$API" -require-unfinished) || die "the queue is already drained before '$1' ($line): the disruptions would not hit running work; lower worker.concurrency in scripts/k8s/e2e-values.yaml"
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
run_check metrics-wave1 "$E2EC" metrics -prom "$PROM" -jobs "$ART/jobs-wave1.json" -watch "$ART/pods-watch.json" -since "$PROM_T0"

# =====================================================================
step "6-upgrade-uninstall"
cfg_before=$(kn get deploy spool-api spool-worker -o jsonpath='{range .items[*]}{.spec.template.metadata.annotations.checksum/config}{" "}{end}')
pods_before=$(kn get pods -l 'app.kubernetes.io/component in (api,worker)' -o name | sort)
token_secret_before=$(kn get secret spool-api-tokens -o jsonpath='{.data.SPOOL_API_TOKENS}')
migrate_before=$(migrate_pods)
# Wave 2 through the upgrade: 25 jobs a second (retried with idempotency keys if an API pod drains mid-request).
"$E2EC" enqueue -api "$API" -n "$WAVE2" -batch 25 -interval 1s -sleep-share 0.5 -min-ms 50 -max-ms 500 -seed 2 \
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
phase helm-upgrade helm upgrade "$RELEASE" ./helm/spool -n "$NS" -f scripts/k8s/e2e-values.yaml -f "$ART/run-values.yaml" \
	--set logging.level=debug "${force[@]}" --wait --timeout 5m >"$ART/helm-upgrade.log" 2>&1 || {
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
migrate_after=$(migrate_pods)
((migrate_after > migrate_before)) || fail_check "no pre-upgrade migrate hook pod seen"
up_s=$(awk -v a="$up_t0" -v b="$up_t1" 'BEGIN { printf "%.1f", b - a }')
note "helm upgrade --set logging.level=debug ${force[*]} --wait: ${up_s}s; worker replicas back to $(kn get deploy spool-worker -o jsonpath='{.spec.replicas}') (worker.replicaCount); checksum/config changed on spool-api (${api_b:0:12} -> ${api_a:0:12}) and spool-worker (${wrk_b:0:12} -> ${wrk_a:0:12}); every api/worker pod replaced ($(echo "$pods_before" | wc -l) old, $(echo "$pods_after" | wc -l) new); pre-upgrade migrate hook ran again ($migrate_before -> $migrate_after migrate pods); generated token kept"
note "wave 2 during the upgrade: $(jq -r '"\(.accepted) jobs enqueued \(.first_at[11:19])-\(.last_at[11:19])"' "$ART/enqueue-wave2.json") (upgrade ran $(date -d "@${up_t0%.*}" +%H:%M:%S)-$(date -d "@${up_t1%.*}" +%H:%M:%S)), $(jq -r '"\(.requests) requests, \(.failed_tries) retried, \(.duplicates) answered duplicate"' "$ART/enqueue-wave2.json")"
phase drain-wave2 "$E2EC" wait -api "$API" -total $((JOBS + WAVE2 + 1)) -timeout 10m
run_check jobs-final "$E2EC" jobs -api "$API" -ids "$ART/ids-wave1.txt,$ART/ids-wave2.txt" -forced "$FORCED" -watch "$ART/pods-watch.json" -out "$ART/jobs-final.json"
note "all jobs: $(jq -r '"\(.by_status.completed) of \(.total) completed, \(.attempts) attempts, \(.rerun_ids | length) ran more than once (\(.rerun_by_forced_delete) after the forced delete)"' "$ART/jobs-final.json")"
note "database cross-check (psql): $(psql_db -F ' ' -c "select status, count(*), sum(attempts), count(*) filter (where jsonb_array_length(errors) > 0) from spool_jobs group by status" | awk '{ printf "%s: %s jobs, %s attempts, %s with an error history; ", $1, $2, $3, $4 }')"
sleep 3
run_check metrics-final "$E2EC" metrics -prom "$PROM" -jobs "$ART/jobs-final.json" -watch "$ART/pods-watch.json" -since "$PROM_T0"

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
	drop_lines '^(serviceaccount/default|configmap/kube-root-ca.crt)$' <<<"$objs"
}
labelled_objects() { # anything labelled with the release, in any namespace or cluster-wide
	local ks
	ks=$(kinds) || return 1
	k get "$ks" -A -l "app.kubernetes.io/instance=$RELEASE" -o name
}
uninstall_listed=1
left=$(leftovers) || { uninstall_listed=0; fail_check "after helm uninstall: kubectl failed to list the objects in namespace $NS"; }
[[ -z $left ]] || fail_check "objects left in namespace $NS after helm uninstall: $(echo "$left" | tr '\n' ' ')"
labelled=$(labelled_objects) || { uninstall_listed=0; fail_check "after helm uninstall: kubectl failed to list objects labelled app.kubernetes.io/instance=$RELEASE"; }
[[ -z $labelled ]] || fail_check "objects labelled app.kubernetes.io/instance=$RELEASE remain: $(echo "$labelled" | tr '\n' ' ')"
releases=$(helm list -n "$NS" -q) || { uninstall_listed=0; fail_check "after helm uninstall: helm list failed"; }
[[ -z $releases ]] || fail_check "helm still lists a release: $releases"
[[ $uninstall_listed == 0 || -n $left || -n $labelled || -n $releases ]] || note "helm uninstall: nothing left: in namespace $NS only the default ServiceAccount and kube-root-ca.crt ConfigMap that every namespace has (all namespaced kinds listed), no object labelled app.kubernetes.io/instance=$RELEASE in any namespace or cluster-wide, no release"
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
	-phases "$PHASES" -forced "$FORCED" -all-deleted=true
grep -E 'force-deleted|pods seen' "$ART/check-pods-final.txt" | sed 's/^ */pods-final: /' >>"$SUMMARY" || true
k delete namespace "$NS" --wait=true --timeout=120s >/dev/null

# =====================================================================
step "7-cluster-down"
# teardown (the EXIT trap) runs down.sh --purge and compares the host with before.
exit 0
