package manifestcheck

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Options tune Check for one rendering.
type Options struct {
	// ExternalSecrets are Secrets the rendering references but does not
	// create (the user's existingSecret values).
	ExternalSecrets []string
	// ExternalConfigMaps are ConfigMaps the rendering references but does
	// not create (the user's envFrom and extraVolumes).
	ExternalConfigMaps []string
	// Migrations is "hook", "initContainer" or "none": how the rendering
	// must apply database migrations.
	Migrations string
}

// workload is anything that runs pods.
type workload struct {
	obj      Object
	kind     string
	name     string
	selector *metav1.LabelSelector // nil for Jobs and Pods
	replicas *int32
	template corev1.PodTemplateSpec
	hook     string // helm.sh/hook annotation of the object
}

func (w workload) String() string { return w.kind + " " + w.name }

type index struct {
	workloads  []workload
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	services   []*corev1.Service
	pdbs       []*policyv1.PodDisruptionBudget
	hpas       []*autoscalingv2.HorizontalPodAutoscaler
	netpols    []*networkingv1.NetworkPolicy
	ingresses  []*networkingv1.Ingress
	sms        []*ServiceMonitor
	pms        []*PodMonitor
	sos        []*ScaledObject
}

func newIndex(objs []Object) *index {
	ix := &index{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			ix.workloads = append(ix.workloads, workload{o, "Deployment", v.Name, v.Spec.Selector, v.Spec.Replicas, v.Spec.Template, v.Annotations["helm.sh/hook"]})
		case *appsv1.StatefulSet:
			ix.workloads = append(ix.workloads, workload{o, "StatefulSet", v.Name, v.Spec.Selector, v.Spec.Replicas, v.Spec.Template, v.Annotations["helm.sh/hook"]})
		case *batchv1.Job:
			ix.workloads = append(ix.workloads, workload{o, "Job", v.Name, nil, nil, v.Spec.Template, v.Annotations["helm.sh/hook"]})
		case *corev1.Pod:
			ix.workloads = append(ix.workloads, workload{o, "Pod", v.Name, nil, nil, corev1.PodTemplateSpec{ObjectMeta: v.ObjectMeta, Spec: v.Spec}, v.Annotations["helm.sh/hook"]})
		case *corev1.ConfigMap:
			ix.configMaps[v.Name] = v
		case *corev1.Secret:
			ix.secrets[v.Name] = v
		case *corev1.Service:
			ix.services = append(ix.services, v)
		case *policyv1.PodDisruptionBudget:
			ix.pdbs = append(ix.pdbs, v)
		case *autoscalingv2.HorizontalPodAutoscaler:
			ix.hpas = append(ix.hpas, v)
		case *networkingv1.NetworkPolicy:
			ix.netpols = append(ix.netpols, v)
		case *networkingv1.Ingress:
			ix.ingresses = append(ix.ingresses, v)
		case *ServiceMonitor:
			ix.sms = append(ix.sms, v)
		case *PodMonitor:
			ix.pms = append(ix.pms, v)
		case *ScaledObject:
			ix.sos = append(ix.sos, v)
		}
	}
	return ix
}

// Check runs the semantic checks on one rendering and returns every
// violation found.
func Check(objs []Object, opts Options) error {
	ix := newIndex(objs)
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(ix.workloads) == 0 {
		fail("no workloads rendered")
	}
	for _, w := range ix.workloads {
		ix.checkWorkload(w, opts, fail)
	}
	ix.checkServices(fail)
	ix.checkIngresses(fail)
	ix.checkScaling(fail)
	ix.checkPolicies(fail)
	ix.checkMigrations(opts, fail)
	ix.checkBundledDatabase(fail)
	return errors.Join(errs...)
}

func matches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(lbls))
}

// podsSelectedBy returns the long-running workloads whose pods sel selects.
func (ix *index) podsSelectedBy(sel *metav1.LabelSelector) []workload {
	var out []workload
	for _, w := range ix.workloads {
		if w.selector != nil && matches(sel, w.template.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func (ix *index) deployment(name string) *workload {
	for i, w := range ix.workloads {
		if w.kind == "Deployment" && w.name == name {
			return &ix.workloads[i]
		}
	}
	return nil
}

// spoolRole says which Spool server a container is: "api", "worker", or ""
// (migrations, PostgreSQL, tests). A worker pool's container is named
// "worker" whatever its image: a team's own worker image (worker.pools.x.image)
// is held to the same checks as the stock one.
func spoolRole(c corev1.Container) string {
	if slices.Contains(c.Args, "migrate") {
		return ""
	}
	switch {
	case strings.Contains(c.Image, "/spool-api"):
		return "api"
	case c.Name == "worker" || strings.Contains(c.Image, "/spool-worker"):
		return "worker"
	}
	return ""
}

// env resolves a container's environment: envFrom ConfigMaps first, then
// env values (not valueFrom). Unresolvable entries are absent.
func (ix *index) env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm := ix.configMaps[ef.ConfigMapRef.Name]; cm != nil {
				for k, v := range cm.Data {
					m[ef.Prefix+k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			m[e.Name] = e.Value
		}
	}
	return m
}

func addrPort(addr string) (int32, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(p, 10, 32)
	return int32(n), err
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// probePort resolves a probe's port (named or numeric) to a number.
func probePort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	return containerPort(c, p.StrVal)
}

func (ix *index) checkWorkload(w workload, opts Options, fail func(string, ...any)) {
	spec := w.template.Spec
	podLabels := w.template.Labels
	if w.selector != nil && !matches(w.selector, podLabels) {
		fail("%s: selector %v does not match its pod labels %v", w, w.selector.MatchLabels, podLabels)
	}
	longRunning := w.kind == "Deployment" || w.kind == "StatefulSet"

	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		fail("%s: automountServiceAccountToken must be false (Spool never calls the Kubernetes API)", w)
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, t := range spec.TopologySpreadConstraints {
		if !matches(t.LabelSelector, podLabels) {
			fail("%s: topology spread selector does not match its own pods", w)
		}
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		where := fmt.Sprintf("%s container %s", w, c.Name)
		checkHardening(where, psc, c.SecurityContext, fail)
		checkResources(where, c.Resources, fail)
		if !strings.Contains(c.Image, "@sha256:") {
			i := strings.LastIndex(c.Image, ":")
			if i < 0 || strings.Contains(c.Image[i:], "/") || strings.HasSuffix(c.Image, ":latest") {
				fail("%s: image %q needs a pinned tag or digest", where, c.Image)
			}
		}
		ix.checkRefs(w, where, c, opts, fail)
		ix.checkGoMemLimit(where, c, fail)
		checkMounts(where, podVolumes(w), c, fail)
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && ix.configMaps[v.ConfigMap.Name] == nil && !slices.Contains(opts.ExternalConfigMaps, v.ConfigMap.Name) {
			fail("%s: volume %s uses ConfigMap %s, which is not rendered", w, v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && ix.secrets[v.Secret.SecretName] == nil && !slices.Contains(opts.ExternalSecrets, v.Secret.SecretName) {
			fail("%s: volume %s uses Secret %s, which is not rendered", w, v.Name, v.Secret.SecretName)
		}
	}

	for _, c := range spec.Containers {
		where := fmt.Sprintf("%s container %s", w, c.Name)
		if longRunning && (c.LivenessProbe == nil || c.ReadinessProbe == nil) {
			fail("%s: needs liveness and readiness probes", where)
		}
		role := spoolRole(c)
		if role == "" || !longRunning {
			continue
		}
		env := ix.env(c)
		if len(c.EnvFrom) > 0 && w.template.Annotations["checksum/config"] == "" {
			fail("%s: pod reads a ConfigMap but has no checksum/config annotation, so config changes would not roll it", w)
		}
		// Admin port: named "metrics", the port the process listens on, probed and scraped.
		adminPort, err := addrPort(env["SPOOL_ADMIN_ADDR"])
		if err != nil {
			fail("%s: SPOOL_ADMIN_ADDR %q: %v", where, env["SPOOL_ADMIN_ADDR"], err)
		}
		if p, ok := containerPort(c, "metrics"); !ok {
			fail("%s: no container port named metrics", where)
		} else if err == nil && p != adminPort {
			fail("%s: port metrics is %d but the admin listener is on %d", where, p, adminPort)
		}
		checkProbe(where, "liveness", c, c.LivenessProbe, "/healthz", adminPort, fail)
		checkProbe(where, "readiness", c, c.ReadinessProbe, "/readyz", adminPort, fail)
		if !ix.scraped(w, adminPort) {
			fail("%s: metrics port is not scraped (no prometheus.io annotations, PodMonitor or ServiceMonitor)", where)
		}

		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if spec.TerminationGracePeriodSeconds != nil {
			grace = *spec.TerminationGracePeriodSeconds
		}
		switch role {
		case "api":
			// A rollout must never take a serving pod away before its
			// replacement is ready: maxUnavailable 0 (and so maxSurge > 0).
			if d, ok := w.obj.Obj.(*appsv1.Deployment); ok {
				checkNoUnavailableRollout(where, d.Spec.Strategy, fail)
			}
			httpPort, err := addrPort(env["SPOOL_HTTP_ADDR"])
			if err != nil {
				fail("%s: SPOOL_HTTP_ADDR %q: %v", where, env["SPOOL_HTTP_ADDR"], err)
			} else if p, ok := containerPort(c, "http"); !ok || p != httpPort {
				fail("%s: port http (%d) must be the HTTP listener's port %d", where, p, httpPort)
			}
			drain, err := time.ParseDuration(env["SPOOL_DRAIN_DELAY"])
			if err != nil {
				fail("%s: SPOOL_DRAIN_DELAY %q: %v", where, env["SPOOL_DRAIN_DELAY"], err)
			}
			shutdown, err := time.ParseDuration(env["SPOOL_HTTP_SHUTDOWN_TIMEOUT"])
			if err != nil {
				fail("%s: SPOOL_HTTP_SHUTDOWN_TIMEOUT %q: %v", where, env["SPOOL_HTTP_SHUTDOWN_TIMEOUT"], err)
			}
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			// The grace period starts before preStop; SIGKILL must not come
			// before the drain and the in-flight requests are done.
			if time.Duration(grace)*time.Second < preStop+drain+shutdown+2*time.Second {
				fail("%s: terminationGracePeriodSeconds %d must exceed preStop %v + SPOOL_DRAIN_DELAY %v + SPOOL_HTTP_SHUTDOWN_TIMEOUT %v by at least 2s", where, grace, preStop, drain, shutdown)
			}
		case "worker":
			timeout, err := time.ParseDuration(env["SPOOL_SHUTDOWN_TIMEOUT"])
			if err != nil {
				fail("%s: SPOOL_SHUTDOWN_TIMEOUT %q: %v", where, env["SPOOL_SHUTDOWN_TIMEOUT"], err)
			}
			// After the timeout the worker cancels jobs, hands them back and
			// exits within about a second; SIGKILL must not come before that.
			if time.Duration(grace)*time.Second < timeout+2*time.Second {
				fail("%s: terminationGracePeriodSeconds %d must exceed SPOOL_SHUTDOWN_TIMEOUT %v by at least 2s", where, grace, timeout)
			}
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
				return e.Name == "SPOOL_WORKER_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
			}) {
				fail("%s: SPOOL_WORKER_ID must come from the pod name (downward API)", where)
			}
		}
	}
}

func checkNoUnavailableRollout(where string, s appsv1.DeploymentStrategy, fail func(string, ...any)) {
	// An empty type or rollingUpdate means Kubernetes' defaults: 25% unavailable.
	if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable == nil {
		fail("%s: Deployment strategy must be RollingUpdate with maxUnavailable 0", where)
		return
	}
	ru := s.RollingUpdate
	// Rounded up, as for maxSurge: any non-zero percentage allows a pod down.
	if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, 100, true); err != nil || n != 0 {
		fail("%s: rollingUpdate.maxUnavailable %s, want 0", where, ru.MaxUnavailable.String())
	}
	if ru.MaxSurge != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, 100, true); err != nil || n == 0 {
			fail("%s: rollingUpdate.maxSurge %s must be above 0 when maxUnavailable is 0", where, ru.MaxSurge.String())
		}
	}
}

func checkHardening(where string, psc *corev1.PodSecurityContext, sc *corev1.SecurityContext, fail func(string, ...any)) {
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		fail("%s: runAsNonRoot must be true", where)
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid == 0 {
		fail("%s: runAsUser must be a non-zero uid", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail("%s: allowPrivilegeEscalation must be false", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		fail("%s: must not be privileged", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		fail("%s: readOnlyRootFilesystem must be true", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		fail("%s: capabilities must drop ALL and add none", where)
	}
	sp := sc.SeccompProfile
	if sp == nil {
		sp = psc.SeccompProfile
	}
	if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		fail("%s: seccompProfile must be RuntimeDefault", where)
	}
}

func checkResources(where string, r corev1.ResourceRequirements, fail func(string, ...any)) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := r.Limits[name]; !ok || q.IsZero() {
			fail("%s: no %s limit", where, name)
		}
		if q, ok := r.Requests[name]; !ok || q.IsZero() {
			fail("%s: no %s request", where, name)
		}
	}
}

func checkProbe(where, kind string, c corev1.Container, p *corev1.Probe, path string, port int32, fail func(string, ...any)) {
	if p == nil || p.HTTPGet == nil {
		fail("%s: %s probe must be an HTTP GET of %s", where, kind, path)
		return
	}
	if p.HTTPGet.Path != path {
		fail("%s: %s probe path %q, want %q", where, kind, p.HTTPGet.Path, path)
	}
	if n, ok := probePort(c, p.HTTPGet.Port); !ok || n != port {
		fail("%s: %s probe port %s is not the admin port %d", where, kind, p.HTTPGet.Port.String(), port)
	}
}

// checkRefs checks that the ConfigMaps and Secrets a container reads exist.
// A hook Job runs before the release's own objects exist (pre-install), so
// it may only read hook Secrets or external ones.
func (ix *index) checkRefs(w workload, where string, c corev1.Container, opts Options, fail func(string, ...any)) {
	preInstall := strings.Contains(w.hook, "pre-install")
	secretOK := func(name, key string) {
		if slices.Contains(opts.ExternalSecrets, name) {
			return
		}
		s := ix.secrets[name]
		if s == nil {
			fail("%s: reads Secret %s, which is not rendered", where, name)
			return
		}
		if _, ok := s.StringData[key]; !ok && key != "" {
			if _, ok := s.Data[key]; !ok {
				fail("%s: Secret %s has no key %s", where, name, key)
			}
		}
		if preInstall && !strings.Contains(s.Annotations["helm.sh/hook"], "pre-install") {
			fail("%s: a pre-install hook cannot read Secret %s: it is created after pre-install hooks run", where, name)
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && ix.configMaps[ef.ConfigMapRef.Name] == nil && !slices.Contains(opts.ExternalConfigMaps, ef.ConfigMapRef.Name) {
			fail("%s: envFrom ConfigMap %s is not rendered", where, ef.ConfigMapRef.Name)
		}
		if ef.SecretRef != nil {
			secretOK(ef.SecretRef.Name, "")
		}
		if preInstall {
			fail("%s: a pre-install hook cannot use envFrom (the release's ConfigMaps do not exist yet)", where)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil && (r.Optional == nil || !*r.Optional) {
			secretOK(r.Name, r.Key)
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			if cm := ix.configMaps[r.Name]; cm == nil {
				fail("%s: env %s reads ConfigMap %s, which is not rendered", where, e.Name, r.Name)
			} else if _, ok := cm.Data[r.Key]; !ok {
				fail("%s: env %s reads missing key %s of ConfigMap %s", where, e.Name, r.Key, r.Name)
			}
		}
	}
}

// scraped reports whether Prometheus scrapes w's admin port: through
// prometheus.io annotations, a PodMonitor or a ServiceMonitor.
func (ix *index) scraped(w workload, adminPort int32) bool {
	a := w.template.Annotations
	if a["prometheus.io/scrape"] == "true" && a["prometheus.io/port"] == strconv.Itoa(int(adminPort)) && a["prometheus.io/path"] == "/metrics" {
		return true
	}
	for _, pm := range ix.pms {
		if matches(&pm.Spec.Selector, w.template.Labels) {
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				if ep.Port == "metrics" && ep.Path == "/metrics" {
					return true
				}
			}
		}
	}
	for _, sm := range ix.sms {
		for _, svc := range ix.services {
			if !matches(&sm.Spec.Selector, svc.Labels) || !matches(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, w.template.Labels) {
				continue
			}
			for _, ep := range sm.Spec.Endpoints {
				for _, sp := range svc.Spec.Ports {
					if ep.Port == sp.Name && ep.Path == "/metrics" && (sp.TargetPort.String() == "metrics" || sp.TargetPort.IntVal == adminPort) {
						return true
					}
				}
			}
		}
	}
	return false
}

func (ix *index) checkServices(fail func(string, ...any)) {
	for _, svc := range ix.services {
		sel := &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
		ws := ix.podsSelectedBy(sel)
		if len(ws) == 0 {
			fail("Service %s: selector %v matches no pods", svc.Name, svc.Spec.Selector)
		}
		for _, w := range ws {
			for _, sp := range svc.Spec.Ports {
				if sp.TargetPort.Type != intstr.String {
					continue
				}
				found := false
				for _, c := range w.template.Spec.Containers {
					if _, ok := containerPort(c, sp.TargetPort.StrVal); ok {
						found = true
					}
				}
				if !found {
					fail("Service %s: targetPort %s is not a port of %s", svc.Name, sp.TargetPort.StrVal, w)
				}
			}
		}
	}
	for _, sm := range ix.sms {
		n := 0
		for _, svc := range ix.services {
			if matches(&sm.Spec.Selector, svc.Labels) {
				n++
			}
		}
		if n == 0 {
			fail("ServiceMonitor %s selects no Service", sm.Name)
		}
	}
	for _, pm := range ix.pms {
		if len(ix.podsSelectedBy(&pm.Spec.Selector)) == 0 {
			fail("PodMonitor %s selects no pods", pm.Name)
		}
	}
}

var queryConcurrency = regexp.MustCompile(`count\(\*\)::decimal / ([0-9]+)\)`)

// hpaTargetsCPU reports whether an HPA scales on the average CPU
// utilization of its pods (a percentage of their CPU requests).
func hpaTargetsCPU(h *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || m.Resource.Name != corev1.ResourceCPU {
			continue
		}
		t := m.Resource.Target
		if t.Type == autoscalingv2.UtilizationMetricType && t.AverageUtilization != nil && *t.AverageUtilization > 0 && *t.AverageUtilization <= 100 {
			return true
		}
	}
	return false
}

// kedaDefaultMaxReplicas is KEDA's maxReplicaCount when a ScaledObject sets none.
const kedaDefaultMaxReplicas = 100

func (ix *index) checkScaling(fail func(string, ...any)) {
	autoscaled := map[string]bool{}
	// maxReplicas is the most pods a Deployment can run: its replicas, or
	// the maximum of the HPA or ScaledObject that scales it.
	maxReplicas := map[string]int32{}
	for _, h := range ix.hpas {
		if !hpaTargetsCPU(h) {
			fail("HPA %s: must scale on CPU utilization (a Resource metric cpu with target type Utilization, averageUtilization 1-100)", h.Name)
		}
		d := ix.deployment(h.Spec.ScaleTargetRef.Name)
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || d == nil {
			fail("HPA %s: target %s %s is not rendered", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
			continue
		}
		autoscaled[d.name] = true
		maxReplicas[d.name] = max(maxReplicas[d.name], h.Spec.MaxReplicas)
		if d.replicas != nil {
			fail("%s: has replicas although HPA %s scales it (every upgrade would reset the scale)", d, h.Name)
		}
	}
	for _, so := range ix.sos {
		d := ix.deployment(so.Spec.ScaleTargetRef.Name)
		if d == nil {
			fail("ScaledObject %s: target Deployment %s is not rendered", so.Name, so.Spec.ScaleTargetRef.Name)
			continue
		}
		autoscaled[d.name] = true
		m := int32(kedaDefaultMaxReplicas)
		if so.Spec.MaxReplicaCount != nil {
			m = *so.Spec.MaxReplicaCount
		}
		maxReplicas[d.name] = max(maxReplicas[d.name], m)
		if d.replicas != nil {
			fail("%s: has replicas although ScaledObject %s scales it", d, so.Name)
		}
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "postgresql" {
			fail("ScaledObject %s: want one postgresql trigger", so.Name)
			continue
		}
		md := so.Spec.Triggers[0].Metadata
		var container *corev1.Container
		for i, c := range d.template.Spec.Containers {
			if c.Name == so.Spec.ScaleTargetRef.EnvSourceContainerName {
				container = &d.template.Spec.Containers[i]
			}
		}
		if container == nil {
			fail("ScaledObject %s: envSourceContainerName %q is not a container of %s", so.Name, so.Spec.ScaleTargetRef.EnvSourceContainerName, d)
			continue
		}
		if !slices.ContainsFunc(container.Env, func(e corev1.EnvVar) bool { return e.Name == md["connectionFromEnv"] }) {
			fail("ScaledObject %s: connectionFromEnv %s is not an env var of %s", so.Name, md["connectionFromEnv"], d)
		}
		q := md["query"]
		if !strings.Contains(q, "FROM spool_jobs") || !strings.Contains(q, "run_at <= now()") {
			fail("ScaledObject %s: query %q does not count due jobs", so.Name, q)
		}
		env := ix.env(*container)
		capacity, queues, err := poolCapacity(env["SPOOL_QUEUES"], env["SPOOL_CONCURRENCY"])
		if err != nil {
			fail("ScaledObject %s: %v", so.Name, err)
		}
		if m := queryConcurrency.FindStringSubmatch(q); m == nil || m[1] != strconv.Itoa(capacity) {
			fail("ScaledObject %s: query divides by %v, want the pool's capacity %d (SPOOL_QUEUES %q)", so.Name, m, capacity, env["SPOOL_QUEUES"])
		}
		if want := "AND queue IN ('" + strings.Join(queues, "','") + "')"; !strings.Contains(q, want) {
			fail("ScaledObject %s: query must filter the pool's queues: %s", so.Name, want)
		}
		for _, k := range []string{"targetQueryValue", "activationTargetQueryValue"} {
			if _, err := strconv.ParseFloat(md[k], 64); err != nil {
				fail("ScaledObject %s: %s %q is not a number", so.Name, k, md[k])
			}
		}
	}
	for _, p := range ix.pdbs {
		ws := ix.podsSelectedBy(p.Spec.Selector)
		if len(ws) != 1 {
			fail("PDB %s: selects %d workloads, want exactly 1", p.Name, len(ws))
			continue
		}
		w := ws[0]
		if !autoscaled[w.name] && (w.replicas == nil || *w.replicas <= 1) {
			fail("PDB %s: %s has at most one replica, so the PDB would block node drains", p.Name, w)
		}
	}
	for _, w := range ix.workloads {
		if w.kind != "Deployment" {
			continue
		}
		n := maxReplicas[w.name]
		if !autoscaled[w.name] {
			n = 1 // Kubernetes' default when replicas is unset
			if w.replicas != nil {
				n = *w.replicas
			}
		}
		// Several pods of an API or worker Deployment must be spread, or one
		// node's loss takes them all.
		if n > 1 && slices.ContainsFunc(w.template.Spec.Containers, func(c corev1.Container) bool { return spoolRole(c) != "" }) {
			if !slices.ContainsFunc(w.template.Spec.TopologySpreadConstraints, func(t corev1.TopologySpreadConstraint) bool {
				return t.TopologyKey != "" && t.MaxSkew >= 1 && matches(t.LabelSelector, w.template.Labels)
			}) {
				fail("%s: up to %d replicas but no topology spread constraint over its own pods", w, n)
			}
		}
		if autoscaled[w.name] || w.replicas == nil || *w.replicas <= 1 {
			continue
		}
		if !slices.ContainsFunc(ix.pdbs, func(p *policyv1.PodDisruptionBudget) bool { return matches(p.Spec.Selector, w.template.Labels) }) {
			fail("%s: %d replicas but no PodDisruptionBudget", w, *w.replicas)
		}
	}
}

// poolCapacity mirrors the worker's SPOOL_QUEUES parsing: each queue runs
// its own number of jobs, or SPOOL_CONCURRENCY when it names none.
func poolCapacity(queues, concurrency string) (int, []string, error) {
	def, err := strconv.Atoi(concurrency)
	if err != nil {
		return 0, nil, fmt.Errorf("SPOOL_CONCURRENCY %q: %v", concurrency, err)
	}
	sum := 0
	var names []string
	for _, part := range strings.Split(queues, ",") {
		name, n, ok := strings.Cut(strings.TrimSpace(part), ":")
		c := def
		if ok {
			if c, err = strconv.Atoi(n); err != nil {
				return 0, nil, fmt.Errorf("SPOOL_QUEUES %q: %v", queues, err)
			}
		}
		sum += c
		names = append(names, name)
	}
	return sum, names, nil
}

func (ix *index) checkPolicies(fail func(string, ...any)) {
	for _, np := range ix.netpols {
		ws := ix.podsSelectedBy(&np.Spec.PodSelector)
		if len(ws) == 0 {
			fail("NetworkPolicy %s: selects no pods", np.Name)
		}
		checkPeers(np, fail)
		for _, w := range ws {
			if w.template.Labels["app.kubernetes.io/component"] == "postgresql" {
				ix.checkDatabasePolicy(np, fail)
			}
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					continue
				}
				for _, w := range ws {
					found := false
					for _, c := range w.template.Spec.Containers {
						if _, ok := containerPort(c, p.Port.StrVal); ok {
							found = true
						}
					}
					if !found {
						fail("NetworkPolicy %s: port %s is not a port of %s", np.Name, p.Port.StrVal, w)
					}
				}
			}
		}
	}
}

// checkMounts: every volume a container mounts is a volume of its pod
// (the API server would refuse the pod, after install).
func checkMounts(where string, volumes map[string]bool, c corev1.Container, fail func(string, ...any)) {
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			fail("%s: mounts volume %s, which the pod does not have", where, m.Name)
		}
	}
}

// podVolumes are the names of a workload's pod volumes, a StatefulSet's
// claim templates included.
func podVolumes(w workload) map[string]bool {
	names := map[string]bool{}
	for _, v := range w.template.Spec.Volumes {
		names[v.Name] = true
	}
	if ss, ok := w.obj.Obj.(*appsv1.StatefulSet); ok {
		for _, c := range ss.Spec.VolumeClaimTemplates {
			names[c.Name] = true
		}
	}
	return names
}

// checkIngresses: every backend is a rendered Service's port that leads to
// the API's http port; TLS names only the rules' hosts; and a NetworkPolicy
// on the API pods admits some other namespace (the controller's) on the
// http port, or the controller could not reach them.
func (ix *index) checkIngresses(fail func(string, ...any)) {
	for _, ing := range ix.ingresses {
		hosts := map[string]bool{}
		for _, rule := range ing.Spec.Rules {
			hosts[rule.Host] = true
			if rule.HTTP == nil || len(rule.HTTP.Paths) == 0 {
				fail("Ingress %s: host %s has no paths", ing.Name, rule.Host)
				continue
			}
			for _, path := range rule.HTTP.Paths {
				ix.checkBackend(ing.Name, path.Backend, fail)
			}
		}
		for _, tls := range ing.Spec.TLS {
			for _, h := range tls.Hosts {
				if !hosts[h] {
					fail("Ingress %s: TLS names host %s, which no rule routes", ing.Name, h)
				}
			}
		}
	}
}

func (ix *index) checkBackend(ing string, b networkingv1.IngressBackend, fail func(string, ...any)) {
	if b.Service == nil {
		fail("Ingress %s: a backend is not a Service", ing)
		return
	}
	i := slices.IndexFunc(ix.services, func(s *corev1.Service) bool { return s.Name == b.Service.Name })
	if i < 0 {
		fail("Ingress %s: backend Service %s is not rendered", ing, b.Service.Name)
		return
	}
	svc := ix.services[i]
	j := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Name == b.Service.Port.Name && b.Service.Port.Name != "" || p.Port == b.Service.Port.Number && b.Service.Port.Number != 0
	})
	if j < 0 || svc.Spec.Ports[j].TargetPort.String() != "http" {
		port := b.Service.Port.Name
		if port == "" {
			port = strconv.Itoa(int(b.Service.Port.Number))
		}
		fail("Ingress %s: backend port %s of Service %s is not the port to the API's http port", ing, port, svc.Name)
		return
	}
	for _, w := range ix.podsSelectedBy(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}) {
		for _, np := range ix.netpols {
			if matches(&np.Spec.PodSelector, w.template.Labels) && !admitsOtherNamespaces(np, "http") {
				fail("Ingress %s: NetworkPolicy %s admits no other namespace on port http, so an ingress controller could not reach %s", ing, np.Name, w)
			}
		}
	}
}

// admitsOtherNamespaces reports whether a rule of np admits pods of a named
// namespace on port.
func admitsOtherNamespaces(np *networkingv1.NetworkPolicy, port string) bool {
	for _, rule := range np.Spec.Ingress {
		if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.String() == port }) {
			continue
		}
		if slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool { return p.NamespaceSelector != nil }) {
			return true
		}
	}
	return false
}

// checkPeers refuses peers that open a policy to the world: IP blocks and
// selectors of every namespace.
func checkPeers(np *networkingv1.NetworkPolicy, fail func(string, ...any)) {
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.IPBlock != nil {
				fail("NetworkPolicy %s: admits the IP block %s", np.Name, peer.IPBlock.CIDR)
			}
			if ns := peer.NamespaceSelector; ns != nil && len(ns.MatchLabels) == 0 && len(ns.MatchExpressions) == 0 {
				fail("NetworkPolicy %s: admits pods of every namespace", np.Name)
			}
		}
	}
}

// checkDatabasePolicy: the bundled PostgreSQL admits exactly Spool's own
// pods (API, workers, migrations), plus the KEDA operator's namespace when a
// ScaledObject queries the database; and every one of those pods is admitted.
func (ix *index) checkDatabasePolicy(np *networkingv1.NetworkPolicy, fail func(string, ...any)) {
	admitted := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			fail("NetworkPolicy %s: an ingress rule without peers admits every pod", np.Name)
		}
		for _, peer := range rule.From {
			switch {
			case peer.NamespaceSelector != nil:
				if len(ix.sos) == 0 || peer.PodSelector != nil || len(peer.NamespaceSelector.MatchLabels) != 1 ||
					peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "" {
					fail("NetworkPolicy %s: admits namespaces %v; only KEDA's, and only with a ScaledObject", np.Name, peer.NamespaceSelector.MatchLabels)
				}
			case peer.PodSelector != nil:
				if len(peer.PodSelector.MatchLabels) == 0 && len(peer.PodSelector.MatchExpressions) == 0 {
					fail("NetworkPolicy %s: admits every pod of its namespace", np.Name)
				}
				for _, w := range ix.workloads {
					if !matches(peer.PodSelector, w.template.Labels) {
						continue
					}
					if c := w.template.Labels["app.kubernetes.io/component"]; c != "api" && c != "worker" && c != "migrate" {
						fail("NetworkPolicy %s: admits %s (component %q) to the database", np.Name, w, c)
					}
					admitted[w.name] = true
				}
			}
		}
	}
	for _, w := range ix.workloads {
		if needsDatabase(w) && !admitted[w.name] {
			fail("NetworkPolicy %s: does not admit %s, which needs the database", np.Name, w)
		}
	}
}

func needsDatabase(w workload) bool {
	for _, c := range slices.Concat(w.template.Spec.InitContainers, w.template.Spec.Containers) {
		if spoolRole(c) != "" || isMigrate(c) {
			return true
		}
	}
	return false
}

func isMigrate(c corev1.Container) bool {
	return strings.Contains(c.Image, "/spool-api") && slices.Equal(c.Args, []string{"migrate"})
}

func (ix *index) checkMigrations(opts Options, fail func(string, ...any)) {
	var hookJobs []workload
	for _, w := range ix.workloads {
		if w.kind == "Job" && slices.ContainsFunc(w.template.Spec.Containers, isMigrate) {
			hookJobs = append(hookJobs, w)
		}
	}
	servers := 0
	withInit := 0
	for _, w := range ix.workloads {
		if !slices.ContainsFunc(w.template.Spec.Containers, func(c corev1.Container) bool { return spoolRole(c) != "" }) {
			continue
		}
		servers++
		if slices.ContainsFunc(w.template.Spec.InitContainers, isMigrate) {
			withInit++
		}
	}
	switch opts.Migrations {
	case "hook":
		if len(hookJobs) != 1 {
			fail("want one migration Job, got %d", len(hookJobs))
		}
		for _, j := range hookJobs {
			if !strings.Contains(j.hook, "pre-install") || !strings.Contains(j.hook, "pre-upgrade") {
				fail("%s: helm.sh/hook %q must include pre-install and pre-upgrade", j, j.hook)
			}
			if sa := j.template.Spec.ServiceAccountName; sa != "" && sa != "default" {
				for _, o := range ix.workloads {
					if o.template.Spec.ServiceAccountName == sa && o.hook == "" {
						fail("%s: uses ServiceAccount %s, which the release creates after pre-install hooks", j, sa)
						break
					}
				}
			}
		}
		if withInit > 0 {
			fail("migrations run as a hook Job and as init containers")
		}
	case "initContainer":
		if len(hookJobs) > 0 {
			fail("migrations run as init containers and as a Job")
		}
		if withInit != servers || servers == 0 {
			fail("%d of %d Spool pods run migrations as an init container, want all", withInit, servers)
		}
	case "none":
		if len(hookJobs) > 0 || withInit > 0 {
			fail("migrations mode none, but migrations are rendered")
		}
	default:
		fail("Options.Migrations %q unknown", opts.Migrations)
	}
}
