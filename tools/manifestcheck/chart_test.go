package manifestcheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// These tests run helm (and render-manifests.sh) as subprocesses on files
// outside this module, which go test's result cache does not track: run them
// with -count=1 (make chart-check does) or a stale "(cached)" pass may hide
// a broken chart.

// kubeVersion is the Kubernetes version the chart is rendered for. Passed
// explicitly so the result does not depend on how helm was built.
const kubeVersion = "1.34.0"

var (
	repoRoot = func() string {
		abs, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			panic(err)
		}
		return abs
	}()
	chartDir = filepath.Join(repoRoot, "helm", "spool")

	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm runs the helm pinned in tools/go.mod (go tool -n helm builds it
// once; later calls cost about a second).
func helm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	helmOnce.Do(func() {
		out, err := exec.Command("go", "-C", filepath.Join(repoRoot, "tools"), "tool", "-n", "helm").Output()
		helmPath, helmErr = strings.TrimSpace(string(out)), err
	})
	if helmErr != nil {
		t.Fatalf("go tool -n helm: %v", helmErr)
	}
	var o, e bytes.Buffer
	cmd := exec.Command(helmPath, args...)
	cmd.Dir = repoRoot
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// renderCase is one values file the chart must lint, render and pass.
type renderCase struct {
	name   string
	values string // file under helm/spool/ci, "" for the defaults
	opts   Options
	// kinds are the rendered object counts by kind that the case must have.
	kinds map[string]int
}

var cases = []renderCase{
	{
		name: "defaults",
		opts: Options{Migrations: "initContainer"},
		kinds: map[string]int{
			"Deployment": 2, "StatefulSet": 1, "Service": 3, "ConfigMap": 3, "Secret": 3,
			"ServiceAccount": 1, "PodDisruptionBudget": 2, "NetworkPolicy": 3, "Pod": 1,
		},
	},
	{
		name:   "all-on",
		values: "all-on-values.yaml",
		opts: Options{Migrations: "initContainer",
			ExternalSecrets: []string{"spool-extra-settings", "spool-ca-bundle"}, ExternalConfigMaps: []string{"shop-settings"}},
		kinds: map[string]int{
			"Deployment": 4, "StatefulSet": 1, "Service": 3, "ConfigMap": 7, "Secret": 4,
			"ServiceAccount": 1, "PodDisruptionBudget": 3, "HorizontalPodAutoscaler": 1,
			"ScaledObject": 2, "ServiceMonitor": 1, "PodMonitor": 1, "PrometheusRule": 1,
			"NetworkPolicy": 3, "Pod": 1, "Ingress": 1,
		},
	},
	{
		name:   "external-db",
		values: "external-db-values.yaml",
		opts: Options{
			Migrations:      "hook",
			ExternalSecrets: []string{"spool-database", "spool-api-tokens", "spool-migrate"},
		},
		kinds: map[string]int{
			"Deployment": 3, "Service": 1, "ConfigMap": 3, "ServiceAccount": 1,
			"PodDisruptionBudget": 2, "Job": 1, "NetworkPolicy": 2, "Pod": 1,
		},
	},
}

func (c renderCase) args() []string {
	if c.values == "" {
		return nil
	}
	return []string{"-f", filepath.Join(chartDir, "ci", c.values)}
}

func TestLintStrict(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, err := helm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, c.args()...)...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, errOut)
			}
		})
	}
}

func render(t *testing.T, c renderCase, extra ...string) []Object {
	t.Helper()
	args := append([]string{"template", "spool", chartDir, "--namespace", "spool", "--kube-version", kubeVersion}, c.args()...)
	out, errOut, err := helm(t, append(args, extra...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, errOut)
	}
	objs, err := Decode(c.name, []byte(out))
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	return objs
}

func TestRender(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := render(t, c)
			got := map[string]int{}
			for _, o := range objs {
				got[o.GVK.Kind]++
			}
			for kind, n := range c.kinds {
				if got[kind] != n {
					t.Errorf("%s objects: got %d, want %d", kind, got[kind], n)
				}
			}
			for kind := range got {
				if _, ok := c.kinds[kind]; !ok {
					t.Errorf("unexpected %d %s objects", got[kind], kind)
				}
			}
			if err := Check(objs, c.opts); err != nil {
				t.Errorf("checks:\n%v", err)
			}
		})
	}
}

// TestShutdownTimeoutSetsGracePeriod: one value sets both the worker's
// SPOOL_SHUTDOWN_TIMEOUT and its terminationGracePeriodSeconds.
func TestShutdownTimeoutSetsGracePeriod(t *testing.T) {
	objs := render(t, cases[0], "--set", "worker.shutdownTimeoutSeconds=100", "--set", "worker.pools.slow.shutdownTimeoutSeconds=300")
	want := map[string]int64{"spool-worker": 110, "spool-worker-slow": 310}
	timeouts := map[string]string{}
	for _, o := range objs {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok {
			timeouts[cm.Name] = cm.Data["SPOOL_SHUTDOWN_TIMEOUT"]
		}
	}
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok || want[d.Name] == 0 {
			continue
		}
		if g := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != want[d.Name] {
			t.Errorf("%s: grace %d, want %d", d.Name, g, want[d.Name])
		}
		if w := fmt.Sprintf("%ds", want[d.Name]-10); timeouts[d.Name] != w {
			t.Errorf("%s: SPOOL_SHUTDOWN_TIMEOUT %q, want %q", d.Name, timeouts[d.Name], w)
		}
		delete(want, d.Name)
	}
	if len(want) > 0 {
		t.Errorf("not rendered: %v", want)
	}
	if err := Check(objs, cases[0].opts); err != nil {
		t.Error(err)
	}
}

// TestChecksCatchMistakes feeds the checks renderings with known mistakes,
// made through values or by editing the decoded objects.
func TestChecksCatchMistakes(t *testing.T) {
	workerPod := func(objs []Object) *corev1.PodSpec {
		for _, o := range objs {
			if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == "spool-worker" {
				return &d.Spec.Template.Spec
			}
		}
		t.Fatal("no spool-worker Deployment")
		return nil
	}
	deployment := func(objs []Object, name string) *appsv1.Deployment {
		for _, o := range objs {
			if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == name {
				return d
			}
		}
		t.Fatalf("no %s Deployment", name)
		return nil
	}
	hpa := func(objs []Object) *autoscalingv2.HorizontalPodAutoscaler {
		for _, o := range objs {
			if h, ok := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler); ok {
				return h
			}
		}
		t.Fatal("no HorizontalPodAutoscaler")
		return nil
	}
	dbPolicy := func(objs []Object) *networkingv1.NetworkPolicy {
		for _, o := range objs {
			if np, ok := o.Obj.(*networkingv1.NetworkPolicy); ok && np.Name == "spool-postgresql" {
				return np
			}
		}
		t.Fatal("no spool-postgresql NetworkPolicy")
		return nil
	}
	for _, tc := range []struct {
		name string
		set  []string
		edit func(objs []Object)
		want string
	}{
		{name: "api maxUnavailable 1", edit: func(objs []Object) {
			u := intstr.FromInt32(1)
			deployment(objs, "spool-api").Spec.Strategy.RollingUpdate.MaxUnavailable = &u
		}, want: "rollingUpdate.maxUnavailable 1, want 0"},
		{name: "api maxUnavailable 10%", edit: func(objs []Object) {
			u := intstr.FromString("10%")
			deployment(objs, "spool-api").Spec.Strategy.RollingUpdate.MaxUnavailable = &u
		}, want: "rollingUpdate.maxUnavailable 10%, want 0"},
		{name: "api default strategy", edit: func(objs []Object) {
			deployment(objs, "spool-api").Spec.Strategy = appsv1.DeploymentStrategy{} // Kubernetes' default: 25% unavailable
		}, want: "Deployment spool-api container api: Deployment strategy must be RollingUpdate with maxUnavailable 0"},
		{name: "api recreate", edit: func(objs []Object) {
			deployment(objs, "spool-api").Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}, want: "Deployment spool-api container api: Deployment strategy must be RollingUpdate"},
		{name: "no spread", set: []string{"topologySpread.enabled=false"}, want: "Deployment spool-api: up to 2 replicas but no topology spread constraint"},
		{name: "no worker spread", edit: func(objs []Object) {
			workerPod(objs).TopologySpreadConstraints = nil
		}, want: "Deployment spool-worker: up to 2 replicas but no topology spread constraint"},
		{name: "spread without key", edit: func(objs []Object) {
			workerPod(objs).TopologySpreadConstraints[0].TopologyKey = ""
		}, want: "Deployment spool-worker: up to 2 replicas but no topology spread constraint"},
		{name: "no spread, autoscaled api", set: []string{"api.autoscaling.enabled=true"}, edit: func(objs []Object) {
			deployment(objs, "spool-api").Spec.Template.Spec.TopologySpreadConstraints = nil
		}, want: "Deployment spool-api: up to 10 replicas but no topology spread constraint"},
		{name: "no spread, keda worker", set: []string{"worker.keda.enabled=true", "worker.keda.minReplicaCount=1"}, edit: func(objs []Object) {
			workerPod(objs).TopologySpreadConstraints = nil
		}, want: "Deployment spool-worker: up to 10 replicas but no topology spread constraint"},
		{name: "hpa on memory", set: []string{"api.autoscaling.enabled=true"}, edit: func(objs []Object) {
			hpa(objs).Spec.Metrics[0].Resource.Name = corev1.ResourceMemory
		}, want: "HPA spool-api: must scale on CPU utilization"},
		{name: "hpa on average value", set: []string{"api.autoscaling.enabled=true"}, edit: func(objs []Object) {
			h := hpa(objs)
			q := resource.MustParse("500m")
			h.Spec.Metrics[0].Resource.Target = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &q}
		}, want: "HPA spool-api: must scale on CPU utilization"},
		{name: "hpa without metrics", set: []string{"api.autoscaling.enabled=true"}, edit: func(objs []Object) {
			hpa(objs).Spec.Metrics = nil // the API server would default to 80% CPU, but say it
		}, want: "HPA spool-api: must scale on CPU utilization"},
		{name: "db superuser is spool", edit: func(objs []Object) {
			setEnv(postgresContainer(t, objs), "POSTGRES_USER", "spool")
		}, want: "POSTGRES_USER=spool makes that role the superuser"},
		{name: "spool role is the superuser", edit: func(objs []Object) {
			setEnv(postgresContainer(t, objs), "SPOOL_DB_USER", "postgres")
		}, want: "Spool's role postgres is the superuser"},
		{name: "no init script", edit: func(objs []Object) {
			c := postgresContainer(t, objs)
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/docker-entrypoint-initdb.d" })
		}, want: "no ConfigMap mounted at /docker-entrypoint-initdb.d"},
		{name: "init script makes a superuser", edit: func(objs []Object) {
			for _, o := range objs {
				if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == "spool-postgresql-init" {
					for k, v := range cm.Data {
						cm.Data[k] = strings.ReplaceAll(v, "NOSUPERUSER", "SUPERUSER")
					}
				}
			}
		}, want: "does not CREATE ROLE $SPOOL_DB_USER ... NOSUPERUSER"},
		{name: "services connect as the superuser", edit: func(objs []Object) {
			for _, o := range objs {
				if s, ok := o.Obj.(*corev1.Secret); ok && s.Name == "spool-database" {
					s.StringData["DATABASE_URL"] = strings.Replace(s.StringData["DATABASE_URL"], "postgres://spool:", "postgres://postgres:", 1)
				}
			}
		}, want: `DATABASE_URL connects as "postgres", want Spool's role "spool"`},
		{name: "worker reads the superuser password", edit: func(objs []Object) {
			c := &workerPod(objs).Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "PGPASSWORD", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "spool-postgresql"}, Key: "POSTGRES_PASSWORD"}}})
		}, want: "reads spool-postgresql, the Secret of the database superuser's password"},
		{name: "no GOMEMLIMIT", set: []string{"goMemLimitPercent=0"}, want: "memory limit 256Mi but no GOMEMLIMIT"},
		{name: "GOMEMLIMIT above the limit", set: []string{"api.extraEnv[0].name=GOMEMLIMIT", "api.extraEnv[0].value=300MiB"}, want: "GOMEMLIMIT 300MiB is not below the memory limit 256Mi"},
		{name: "writable root", set: []string{"containerSecurityContext.readOnlyRootFilesystem=false"}, want: "readOnlyRootFilesystem must be true"},
		{name: "root user", set: []string{"podSecurityContext.runAsNonRoot=false", "containerSecurityContext.runAsNonRoot=false"}, want: "runAsNonRoot must be true"},
		{name: "no limits", set: []string{"worker.resources.limits=null"}, want: "no cpu limit"},
		{name: "not scraped", set: []string{"metrics.podAnnotations=false"}, want: "metrics port is not scraped"},
		{name: "grace = shutdown timeout", edit: func(objs []Object) {
			g := int64(25)
			workerPod(objs).TerminationGracePeriodSeconds = &g
		}, want: "must exceed SPOOL_SHUTDOWN_TIMEOUT"},
		{name: "default grace", edit: func(objs []Object) {
			workerPod(objs).TerminationGracePeriodSeconds = nil // Kubernetes' default, 30s
			for _, o := range objs {
				if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == "spool-worker" {
					cm.Data["SPOOL_SHUTDOWN_TIMEOUT"] = "60s"
				}
			}
		}, want: "must exceed SPOOL_SHUTDOWN_TIMEOUT"},
		{name: "probe path", edit: func(objs []Object) {
			workerPod(objs).Containers[0].ReadinessProbe.HTTPGet.Path = "/ready"
		}, want: `readiness probe path "/ready"`},
		{name: "probe port", edit: func(objs []Object) {
			workerPod(objs).Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromString("http")
		}, want: "liveness probe port http is not the admin port"},
		{name: "selector", edit: func(objs []Object) {
			for _, o := range objs {
				if s, ok := o.Obj.(*corev1.Service); ok {
					s.Spec.Selector["app.kubernetes.io/component"] = "apj"
				}
			}
		}, want: "matches no pods"},
		{name: "db policy open to the namespace", set: []string{"networkPolicy.enabled=true"}, edit: func(objs []Object) {
			dbPolicy(objs).Spec.Ingress[0].From = append(dbPolicy(objs).Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}})
		}, want: "admits every pod of its namespace"},
		{name: "db policy admits the test pod", set: []string{"networkPolicy.enabled=true"}, edit: func(objs []Object) {
			dbPolicy(objs).Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] = "test"
		}, want: "does not admit Deployment spool-api, which needs the database"},
		{name: "db policy forgets the workers", set: []string{"networkPolicy.enabled=true"}, edit: func(objs []Object) {
			from := dbPolicy(objs).Spec.Ingress[0].From
			dbPolicy(objs).Spec.Ingress[0].From = slices.DeleteFunc(from, func(p networkingv1.NetworkPolicyPeer) bool {
				return p.PodSelector != nil && p.PodSelector.MatchLabels["app.kubernetes.io/component"] == "worker"
			})
		}, want: "does not admit Deployment spool-worker"},
		{name: "db policy admits a namespace without KEDA", set: []string{"networkPolicy.enabled=true"}, edit: func(objs []Object) {
			dbPolicy(objs).Spec.Ingress[0].From = append(dbPolicy(objs).Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "keda"}}})
		}, want: "only KEDA's, and only with a ScaledObject"},
		{name: "api policy open to every namespace", set: []string{"networkPolicy.enabled=true"}, edit: func(objs []Object) {
			for _, o := range objs {
				if np, ok := o.Obj.(*networkingv1.NetworkPolicy); ok && np.Name == "spool-api" {
					np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}})
				}
			}
		}, want: "admits pods of every namespace"},
		{name: "ip block", set: []string{"networkPolicy.enabled=true"}, edit: func(objs []Object) {
			dbPolicy(objs).Spec.Ingress[0].From = append(dbPolicy(objs).Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{
				IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}})
		}, want: "admits the IP block 0.0.0.0/0"},
		{name: "worker id", edit: func(objs []Object) {
			c := &workerPod(objs).Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SPOOL_WORKER_ID" })
		}, want: "SPOOL_WORKER_ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			objs := render(t, cases[0], args...)
			if tc.edit != nil {
				tc.edit(objs)
			}
			err := Check(objs, cases[0].opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got: %v", tc.want, err)
			}
		})
	}
}

// TestSpreadOnlyWithReplicas: a single pod needs no topology spread, so the
// spread check does not fire for one replica (its counterpart, "no spread"
// in TestChecksCatchMistakes, fires for two).
func TestSpreadOnlyWithReplicas(t *testing.T) {
	objs := render(t, cases[0], "--set", "topologySpread.enabled=false", "--set", "api.replicaCount=1", "--set", "worker.replicaCount=1")
	if err := Check(objs, cases[0].opts); err != nil {
		t.Errorf("checks:\n%v", err)
	}
}

// TestValidateRejects: validate.yaml fails the render, with a message
// naming the problem, for value combinations the schema cannot catch.
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		// postgresql.enabled defaults to true: a database.url alone would be ignored.
		{name: "url with bundled db", set: []string{"database.url=postgres://spool:pw@db:5432/spool"}, want: "database.url is set but postgresql.enabled=true"},
		{name: "existing secret with bundled db", set: []string{"database.existingSecret=spool-database"}, want: "database.existingSecret is set but postgresql.enabled=true"},
		{name: "hook with bundled db", set: []string{"migrations.mode=hook"}, want: "migrations.mode=hook does not work with postgresql.enabled=true"},
		{name: "external db without url", set: []string{"postgresql.enabled=false"}, want: "set database.url or database.existingSecret"},
		{name: "api min above max", set: []string{"api.autoscaling.enabled=true", "api.autoscaling.minReplicas=5", "api.autoscaling.maxReplicas=3"}, want: "must not exceed api.autoscaling.maxReplicas"},
		{name: "no pools", set: []string{"worker.pools.default.enabled=false"}, want: "at least one pool must be enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "spool", chartDir, "--kube-version", kubeVersion}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, errOut, err := helm(t, args...)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Errorf("helm template %v: want an error containing %q, got err=%v\n%s", tc.set, tc.want, err, errOut)
			}
		})
	}
}

// TestSchemaRejects: values.schema.json (additionalProperties: false) turns
// typos and wrong types in users' values into errors.
func TestSchemaRejects(t *testing.T) {
	for _, set := range []string{
		"worker.concurency=5",                                                 // typo at the top of a block
		"worker.pools.emails.concurency=5",                                    // typo in a pool
		"api.replicaCount=two",                                                // wrong type
		"api.auth.tokens[0].token=short",                                      // too short, no scope
		"migrations.mode=sometimes",                                           // not an enum value
		"worker.pools.Bad_Name.concurrency=1",                                 // not a DNS label
		"worker.pools.shop.image.repository=registry.example.com/shop-worker", // own image without a tag or digest
		"logging.level=verbose",
		"postgresql.auth.username=postgres", // the superuser
		"goMemLimitPercent=120",
		"database.tls.sslMode=disable",
	} {
		t.Run(set, func(t *testing.T) {
			_, errOut, err := helm(t, "template", "spool", chartDir, "--kube-version", kubeVersion, "--set", set)
			if err == nil || !strings.Contains(errOut, "schema") {
				t.Errorf("helm template --set %s: want a schema error, got err=%v\n%s", set, err, errOut)
			}
		})
	}
}

// TestHookSecretsAndJob: with an external database URL the chart creates,
// the migration Job reads a Secret that is itself a pre-install hook.
func TestHookSecretsAndJob(t *testing.T) {
	c := renderCase{name: "external-url", opts: Options{Migrations: "hook"}}
	objs := render(t, c, "--set", "postgresql.enabled=false", "--set", "database.url=postgres://spool:pw@db:5432/spool")
	if err := Check(objs, c.opts); err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	var hookSecret *corev1.Secret
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *batchv1.Job:
			job = v
		case *corev1.Secret:
			if v.Name == "spool-migrate" {
				hookSecret = v
			}
		}
	}
	if job == nil || hookSecret == nil {
		t.Fatalf("want a migration Job and Secret spool-migrate, got job=%v secret=%v", job != nil, hookSecret != nil)
	}
	if got := hookSecret.StringData["DATABASE_URL"]; got != "postgres://spool:pw@db:5432/spool" {
		t.Errorf("hook Secret DATABASE_URL = %q", got)
	}
	sw, err1 := strconv.Atoi(hookSecret.Annotations["helm.sh/hook-weight"])
	jw, err2 := strconv.Atoi(job.Annotations["helm.sh/hook-weight"])
	if err1 != nil || err2 != nil || sw >= jw {
		t.Errorf("hook Secret weight %q must be below the Job's %q", hookSecret.Annotations["helm.sh/hook-weight"], job.Annotations["helm.sh/hook-weight"])
	}
	if !strings.Contains(hookSecret.Annotations["helm.sh/hook-delete-policy"], "hook-succeeded") {
		t.Errorf("hook Secret must be deleted after the hooks (hook-succeeded), got %q", hookSecret.Annotations["helm.sh/hook-delete-policy"])
	}
}

// TestManifestsUpToDate: k8s/ is exactly what `make manifests` renders now.
func TestManifestsUpToDate(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "k8s", "render-manifests.sh"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render-manifests.sh: %v\n%s", err, out)
	}
	want := readTree(t, dir)
	got := readTree(t, filepath.Join(repoRoot, "k8s"))
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("k8s/%s is missing; run make manifests", name)
		} else if g != w {
			t.Errorf("k8s/%s differs from a fresh render; run make manifests", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("k8s/%s is not rendered by the chart any more; run make manifests", name)
		}
	}
}

// readTree reads kustomization.yaml and spool/*.yaml under dir (the files
// render-manifests.sh owns).
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(dir, "spool", "*.yaml"))
	paths = append(paths, filepath.Join(dir, "kustomization.yaml"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(b)
	}
	return files
}

// k8sExternalSecrets are the Secrets the plain manifests leave to the user
// (render-manifests.sh): the API tokens and the bundled database's passwords.
var k8sExternalSecrets = []string{"spool-api-tokens", "spool-database", "spool-postgresql"}

// TestK8sManifests decodes the committed plain manifests strictly and runs
// the same checks on them.
func TestK8sManifests(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(repoRoot, "k8s", "spool", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no k8s/spool/*.yaml (%v)", err)
	}
	slices.Sort(paths)
	var objs []Object
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		o, err := Decode(filepath.Base(p), b)
		if err != nil {
			t.Fatalf("strict decode:\n%v", err)
		}
		objs = append(objs, o...)
	}
	for _, o := range objs {
		if a, ok := o.Obj.(interface{ GetAnnotations() map[string]string }); ok && a.GetAnnotations()["helm.sh/hook"] != "" {
			t.Errorf("%s: a Helm hook in plain manifests would be applied as an ordinary object", o)
		}
	}
	if err := Check(objs, Options{Migrations: "initContainer", ExternalSecrets: k8sExternalSecrets}); err != nil {
		t.Errorf("checks:\n%v", err)
	}
}

func postgresContainer(t *testing.T, objs []Object) *corev1.Container {
	t.Helper()
	for _, o := range objs {
		if ss, ok := o.Obj.(*appsv1.StatefulSet); ok && ss.Name == "spool-postgresql" {
			return &ss.Spec.Template.Spec.Containers[0]
		}
	}
	t.Fatal("no spool-postgresql StatefulSet")
	return nil
}

// setEnv sets a literal env value, replacing any entry of that name.
func setEnv(c *corev1.Container, name, value string) {
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}
