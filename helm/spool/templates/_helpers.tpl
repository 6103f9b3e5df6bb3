{{/*
Names, labels and shared pieces. Components: api, worker (one per pool),
migrate, postgresql, test.
*/}}

{{/* Chart name. */}}
{{- define "spool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "spool.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects. Call with (dict "root" $ "component" "api"). */}}
{{- define "spool.componentname" -}}
{{- printf "%s-%s" (include "spool.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* chart label value */}}
{{- define "spool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels. Call with (dict "root" $ "component" "api") and optionally "pool". */}}
{{- define "spool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spool.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .pool }}
spoolq.github.io/pool: {{ . }}
{{- end }}
{{- end -}}

{{/* All labels. Same arguments as spool.selectorLabels. */}}
{{- define "spool.labels" -}}
helm.sh/chart: {{ include "spool.chart" .root }}
{{ include "spool.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: spool
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Image reference. Call with (dict "root" $ "image" .Values.api.image). */}}
{{- define "spool.image" -}}
{{- $repo := include "spool.repository" (dict "root" .root "repository" .image.repository) -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
A repository with image.registry in place of its registry: the first path
part is a registry when it has a dot or a colon or is localhost (as
container runtimes read it); a repository without one gets the registry
in front. Call with (dict "root" $ "repository" "ghcr.io/spoolq/spool-api").
*/}}
{{- define "spool.repository" -}}
{{- $repo := .repository -}}
{{- with .root.Values.image.registry -}}
{{- $parts := splitList "/" $repo -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repo = join "/" (rest $parts) -}}
{{- end -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo -}}
{{- end -}}
{{- $repo -}}
{{- end -}}

{{/*
The init containers of a pod: the user's (values initContainers), then the
migration when migrations run as an init container. Nothing when there
are none. Call with (dict "root" $ "extra" .initContainers).
*/}}
{{- define "spool.initContainers" -}}
{{- $migrate := eq (include "spool.migrationsMode" .root) "initContainer" -}}
{{- if or $migrate .extra -}}
initContainers:
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- if $migrate }}
  {{- include "spool.migrateContainer" (dict "root" .root "name" "migrate") | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* ServiceAccount name. */}}
{{- define "spool.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spool.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret and key holding the services' DATABASE_URL: (list name key). */}}
{{- define "spool.databaseSecret" -}}
{{- if and (not .Values.postgresql.enabled) .Values.database.existingSecret -}}
{{- list .Values.database.existingSecret .Values.database.existingSecretKey | toJson -}}
{{- else -}}
{{- list (include "spool.componentname" (dict "root" . "component" "database")) "DATABASE_URL" | toJson -}}
{{- end -}}
{{- end -}}

{{/* True when the chart creates the database Secret. */}}
{{- define "spool.createDatabaseSecret" -}}
{{- if or .Values.postgresql.enabled (not .Values.database.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/*
Passwords of the bundled PostgreSQL: postgresql.auth.password (the role Spool
connects as) and postgresql.auth.postgresPassword (the superuser, used only by
the image's initialisation). Empty values are filled in once per render: from
the release's existing Secrets (so upgrades keep them), else generated. Call it
before reading either value; it renders nothing.
*/}}
{{- define "spool.postgresqlAuth" -}}
{{- $auth := .Values.postgresql.auth -}}
{{- if not $auth.password -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "spool.componentname" (dict "root" . "component" "database")) -}}
{{- $data := (and $s $s.data) | default dict -}}
{{- if hasKey $data "password" -}}
{{- $_ := set $auth "password" (index $data "password" | b64dec) -}}
{{- else if hasKey $data "POSTGRES_PASSWORD" -}}
{{- /* Chart versions before the non-superuser role kept the role's password under this key. */ -}}
{{- $_ := set $auth "password" (index $data "POSTGRES_PASSWORD" | b64dec) -}}
{{- else -}}
{{- $_ := set $auth "password" (randAlphaNum 32) -}}
{{- end -}}
{{- end -}}
{{- if not $auth.postgresPassword -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "spool.componentname" (dict "root" . "component" "postgresql")) -}}
{{- $data := (and $s $s.data) | default dict -}}
{{- if hasKey $data "POSTGRES_PASSWORD" -}}
{{- $_ := set $auth "postgresPassword" (index $data "POSTGRES_PASSWORD" | b64dec) -}}
{{- else -}}
{{- $_ := set $auth "postgresPassword" (randAlphaNum 32) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The services' database URL when the chart creates the Secret. */}}
{{- define "spool.databaseURL" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "spool.postgresqlAuth" . -}}
{{- $pg := .Values.postgresql.auth -}}
{{- /* <service>.<namespace>.svc: KEDA's operator, in its own namespace, connects with this URL too. */ -}}
{{- $host := printf "%s.%s.svc" (include "spool.componentname" (dict "root" . "component" "postgresql")) .Release.Namespace -}}
{{- printf "postgres://%s:%s@%s:5432/%s?sslmode=disable" (urlquery $pg.username) (urlquery $pg.password) $host (urlquery $pg.database) -}}
{{- else -}}
{{- required "set database.url or database.existingSecret (or postgresql.enabled=true to try Spool out)" .Values.database.url -}}
{{- end -}}
{{- end -}}

{{/* Resolved migration mode: hook, initContainer or none. */}}
{{- define "spool.migrationsMode" -}}
{{- if eq .Values.migrations.mode "auto" -}}
{{- if .Values.postgresql.enabled -}}initContainer{{- else -}}hook{{- end -}}
{{- else -}}
{{- .Values.migrations.mode -}}
{{- end -}}
{{- end -}}

{{/*
Whether the chart creates the Secret `<fullname>-migrate` for migrations:
"hook" (a pre-install/pre-upgrade hook object, because the hook Job runs before
the release's own objects exist), "plain" (an ordinary object, for init
containers), or empty (migrations read an existing Secret or the services' one).
*/}}
{{- define "spool.migrateSecretKind" -}}
{{- $mode := include "spool.migrationsMode" . -}}
{{- if not .Values.migrations.database.existingSecret -}}
{{- if eq $mode "hook" -}}
{{- if or .Values.migrations.database.url (include "spool.createDatabaseSecret" .) -}}hook{{- end -}}
{{- else if and (eq $mode "initContainer") .Values.migrations.database.url -}}plain
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Secret and key the migrations read: (list name key). */}}
{{- define "spool.migrationsSecret" -}}
{{- if .Values.migrations.database.existingSecret -}}
{{- list .Values.migrations.database.existingSecret .Values.migrations.database.existingSecretKey | toJson -}}
{{- else if include "spool.migrateSecretKind" . -}}
{{- list (include "spool.componentname" (dict "root" . "component" "migrate")) "DATABASE_URL" | toJson -}}
{{- else -}}
{{- include "spool.databaseSecret" . -}}
{{- end -}}
{{- end -}}

{{/* Secret and key with the API tokens: (list name key), or empty when auth is disabled. */}}
{{- define "spool.tokensSecret" -}}
{{- if not .Values.api.auth.disabled -}}
{{- if .Values.api.auth.existingSecret -}}
{{- list .Values.api.auth.existingSecret .Values.api.auth.existingSecretKey | toJson -}}
{{- else -}}
{{- list (include "spool.componentname" (dict "root" . "component" "api-tokens")) "SPOOL_API_TOKENS" | toJson -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Go duration from seconds. */}}
{{- define "spool.seconds" -}}
{{- printf "%ds" (int .) -}}
{{- end -}}

{{/*
Merge src into dst in place: maps key by key (recursively), everything else
replaced, so `false` and `0` in src win (unlike sprig's merge functions).
Call with (list $dst $src).
*/}}
{{- define "spool.merge" -}}
{{- $dst := index . 0 -}}
{{- range $k, $v := index . 1 -}}
{{- if and (kindIs "map" $v) (kindIs "map" (index $dst $k)) -}}
{{- include "spool.merge" (list (index $dst $k) $v) -}}
{{- else -}}
{{- $_ := set $dst $k $v -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Enabled worker pools, each the worker defaults merged with the pool's
overrides, plus name and fullname, as a YAML map name → pool. A pool's
`image` replaces worker.image as a whole (no tag or digest of the stock
image is carried over to another repository).
Use: {{- range $name, $pool := include "spool.workerPools" $ | fromYaml }}
*/}}
{{- define "spool.workerPools" -}}
{{- $root := . -}}
{{- $defaults := omit (deepCopy .Values.worker) "pools" "schedules" -}}
{{- $out := dict -}}
{{- range $name, $overrides := .Values.worker.pools -}}
{{- $pool := deepCopy $defaults -}}
{{- $_ := set $pool "enabled" true -}}
{{- $overrides = deepCopy (default dict $overrides) -}}
{{- with $overrides.image -}}
{{- $_ := set $pool "image" . -}}
{{- end -}}
{{- include "spool.merge" (list $pool (omit $overrides "image")) -}}
{{- if $pool.enabled -}}
{{- $_ := set $pool "name" $name -}}
{{- if eq $name "default" -}}
{{- $_ := set $pool "fullname" (include "spool.componentname" (dict "root" $root "component" "worker")) -}}
{{- else -}}
{{- $_ := set $pool "fullname" (include "spool.componentname" (dict "root" $root "component" (printf "worker-%s" $name))) -}}
{{- end -}}
{{- $_ := set $out $name $pool -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Queue names of a pool's SPOOL_QUEUES value ("a:10,b:5" → list a b). Call with the pool. */}}
{{- define "spool.queueNames" -}}
{{- $names := list -}}
{{- range splitList "," .queues -}}
{{- $q := trim (first (splitList ":" .)) -}}
{{- if $q -}}{{- $names = append $names $q -}}{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Jobs one pod of a pool runs at once: the sum of its queues' concurrency. Call with the pool. */}}
{{- define "spool.poolCapacity" -}}
{{- $pool := . -}}
{{- $sum := 0 -}}
{{- range splitList "," $pool.queues -}}
{{- $parts := splitList ":" (trim .) -}}
{{- if gt (len $parts) 1 -}}
{{- $sum = add $sum (atoi (index $parts 1)) -}}
{{- else -}}
{{- $sum = add $sum $pool.concurrency -}}
{{- end -}}
{{- end -}}
{{- $sum -}}
{{- end -}}

{{/* Volume for /tmp (read-only root filesystem). */}}
{{- define "spool.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* Container running `spool-api migrate`. Call with (dict "root" $ "name" "migrate"). */}}
{{- define "spool.migrateContainer" -}}
{{- $root := .root -}}
{{- $secret := include "spool.migrationsSecret" $root | fromJsonArray -}}
- name: {{ .name }}
  image: {{ include "spool.image" (dict "root" $root "image" $root.Values.api.image) }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args: ["migrate"]
  env:
    - name: DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ index $secret 0 }}
          key: {{ index $secret 1 }}
    - name: SPOOL_LOG_LEVEL
      value: {{ $root.Values.logging.level | quote }}
    - name: SPOOL_LOG_FORMAT
      value: {{ $root.Values.logging.format | quote }}
    - name: SPOOL_DB_SCHEMA
      value: {{ $root.Values.database.schema | quote }}
    - name: SPOOL_DEMO
      value: {{ $root.Values.demo.enabled | quote }}
    {{- include "spool.databaseTLSEnv" $root | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml $root.Values.migrations.resources | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- include "spool.databaseTLSMount" $root | nindent 4 }}
{{- end -}}

{{/* Topology spread constraint for a component. Same arguments as spool.selectorLabels. */}}
{{- define "spool.topologySpread" -}}
{{- $t := .root.Values.topologySpread -}}
{{- if $t.enabled -}}
topologySpreadConstraints:
  - maxSkew: {{ $t.maxSkew }}
    topologyKey: {{ $t.topologyKey }}
    whenUnsatisfiable: {{ $t.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "spool.selectorLabels" . | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
{{- end }}
{{- end -}}

{{/* Prometheus scrape annotations for a pod. */}}
{{- define "spool.scrapeAnnotations" -}}
{{- if .Values.metrics.podAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.adminPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Admin-port probes. Call with (dict "live" .livenessProbe "ready" .readinessProbe). */}}
{{- define "spool.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ .live.periodSeconds }}
  timeoutSeconds: {{ .live.timeoutSeconds }}
  failureThreshold: {{ .live.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: {{ .ready.periodSeconds }}
  timeoutSeconds: {{ .ready.timeoutSeconds }}
  failureThreshold: {{ .ready.failureThreshold }}
{{- end -}}

{{/* Data of a worker pool's ConfigMap. Call with (dict "root" $ "pool" $pool). */}}
{{- define "spool.workerConfigData" -}}
{{- $pool := .pool -}}
SPOOL_ADMIN_ADDR: {{ printf ":%d" (int .root.Values.adminPort) | quote }}
SPOOL_LOG_LEVEL: {{ .root.Values.logging.level | quote }}
SPOOL_LOG_FORMAT: {{ .root.Values.logging.format | quote }}
SPOOL_CONCURRENCY: {{ $pool.concurrency | int | quote }}
SPOOL_QUEUES: {{ $pool.queues | quote }}
SPOOL_DB_MAX_CONNS: {{ $pool.dbMaxConns | int | quote }}
SPOOL_POLL_INTERVAL: {{ $pool.pollInterval | quote }}
SPOOL_SHUTDOWN_TIMEOUT: {{ include "spool.seconds" $pool.shutdownTimeoutSeconds | quote }}
SPOOL_LEASE_DURATION: {{ $pool.leaseDuration | quote }}
SPOOL_RESCUE_INTERVAL: {{ $pool.rescueInterval | quote }}
SPOOL_DIAGNOSTIC_JOBS: {{ .root.Values.diagnosticJobs | quote }}
SPOOL_DB_SCHEMA: {{ .root.Values.database.schema | quote }}
SPOOL_DEMO: {{ .root.Values.demo.enabled | quote }}
{{- with .root.Values.kinds.http.allowedHosts }}
SPOOL_HTTP_ALLOWED_HOSTS: {{ join "," . | quote }}
{{- end }}
{{- with .root.Values.kinds.http.secretHeaders }}
SPOOL_HTTP_SECRET_HEADERS: {{ join "," . | quote }}
{{- end }}
{{- with .root.Values.kinds.email.from }}
SPOOL_SMTP_FROM: {{ . | quote }}
{{- end }}
{{- if .root.Values.worker.schedules }}
SPOOL_SCHEDULES_FILE: /etc/spool/schedules.json
{{- end }}
{{- end -}}

{{/*
GOMEMLIMIT env entry: goMemLimitPercent of the container's memory limit, in
MiB. Nothing when the percentage is 0, there is no memory limit, or extraEnv
sets GOMEMLIMIT itself. Call with (dict "root" $ "resources" .resources "extraEnv" .extraEnv).
*/}}
{{- define "spool.goMemLimitEnv" -}}
{{- $pct := int .root.Values.goMemLimitPercent -}}
{{- $limit := "" -}}
{{- with .resources }}{{ with .limits }}{{ $limit = toString (.memory | default "") }}{{ end }}{{ end -}}
{{- $own := false -}}
{{- range .extraEnv }}{{ if eq .name "GOMEMLIMIT" }}{{ $own = true }}{{ end }}{{ end -}}
{{- if and (gt $pct 0) $limit (not $own) -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $limit -}}
{{- $unit := trimPrefix $num $limit -}}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if or (not $num) (not (hasKey $factors $unit)) -}}
{{- fail (printf "resources.limits.memory %q: goMemLimitPercent needs a plain number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix (or set goMemLimitPercent=0)" $limit) -}}
{{- end -}}
{{- $mib := floor (divf (mulf (float64 $num) (index $factors $unit) $pct) (mulf 100 1048576)) | int64 -}}
- name: GOMEMLIMIT
  # {{ $pct }}% of the memory limit ({{ $limit }}): goMemLimitPercent
  value: {{ printf "%dMiB" $mib | quote }}
{{- end -}}
{{- end -}}

{{/* PGSSLROOTCERT and PGSSLMODE env entries when database.tls.caSecret is set. */}}
{{- define "spool.databaseTLSEnv" -}}
{{- with .Values.database.tls -}}
{{- if .caSecret -}}
- name: PGSSLROOTCERT
  value: {{ printf "/etc/spool-db-ca/%s" .caSecretKey | quote }}
- name: PGSSLMODE
  value: {{ .sslMode | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* volumeMount of the database CA when database.tls.caSecret is set. */}}
{{- define "spool.databaseTLSMount" -}}
{{- if .Values.database.tls.caSecret -}}
- name: db-ca
  mountPath: /etc/spool-db-ca
  readOnly: true
{{- end -}}
{{- end -}}

{{/* Volume of the database CA when database.tls.caSecret is set. */}}
{{- define "spool.databaseTLSVolume" -}}
{{- with .Values.database.tls -}}
{{- if .caSecret -}}
- name: db-ca
  secret:
    secretName: {{ .caSecret }}
    items:
      - key: {{ .caSecretKey }}
        path: {{ .caSecretKey }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The http kind's header key, as an env entry of the API's and every worker's container. */}}
{{- define "spool.headerKeyEnv" -}}
{{- with .Values.kinds.http.headerKeySecret }}
- name: SPOOL_HTTP_HEADER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kinds.http.headerKeySecretKey }}
{{- end }}
{{- end -}}

{{/* The secrets of the stock kinds, as env entries of a worker container. */}}
{{- define "spool.kindSecretsEnv" -}}
{{- include "spool.headerKeyEnv" . }}
{{- with .Values.kinds.http.webhookSecret }}
- name: SPOOL_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kinds.http.webhookSecretKey }}
{{- end }}
{{- with .Values.kinds.email.smtpUrlSecret }}
- name: SPOOL_SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kinds.email.smtpUrlKey }}
{{- end }}
{{- end -}}
