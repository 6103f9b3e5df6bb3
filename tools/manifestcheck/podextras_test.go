package manifestcheck

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The all-on values' pod extras, Ingress and registry land where they
// should: the user's envFrom after the chart's ConfigMap, volumes with
// their mounts, init containers before the migration, sidecars beside
// Spool's container (in every worker pool too), one Ingress to the API
// Service's http port, and every image the chart names from the mirror
// registry (the user's own containers keep theirs).
func TestPodExtrasIngressAndRegistry(t *testing.T) {
	t.Parallel()
	objs := render(t, cases[1])
	var ing *networkingv1.Ingress
	pods := map[string]corev1.PodSpec{}
	var images []string
	for _, o := range objs {
		var spec *corev1.PodSpec
		switch v := o.Obj.(type) {
		case *networkingv1.Ingress:
			ing = v
		case *appsv1.Deployment:
			pods[v.Name], spec = v.Spec.Template.Spec, &v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			spec = &v.Spec.Template.Spec
		case *corev1.Pod:
			spec = &v.Spec
		}
		if spec != nil {
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				images = append(images, c.Image)
			}
		}
	}
	// The user's own containers keep their images as written.
	for _, img := range images {
		if !strings.HasPrefix(img, "registry.internal:5000/mirror/") && !strings.HasPrefix(img, "example.com/") {
			t.Errorf("image %s is not from image.registry", img)
		}
	}
	if !slices.Contains(images, "registry.internal:5000/mirror/library/postgres:17-alpine") || !slices.Contains(images, "registry.internal:5000/mirror/library/busybox:1.36") {
		t.Errorf("images %v: want the registry in place of docker.io", images)
	}

	api := pods["spool-api"]
	names := func(cs []corev1.Container) (out []string) {
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(api.InitContainers); !slices.Equal(got, []string{"proxy", "migrate"}) {
		t.Errorf("API init containers %v, want [proxy migrate]", got)
	}
	if got := names(api.Containers); !slices.Equal(got, []string{"api", "log-shipper"}) {
		t.Errorf("API containers %v, want [api log-shipper]", got)
	}
	ef := api.Containers[0].EnvFrom
	if len(ef) != 2 || ef[0].ConfigMapRef == nil || ef[1].SecretRef == nil || ef[1].SecretRef.Name != "spool-extra-settings" {
		t.Errorf("API envFrom %+v, want the chart's ConfigMap, then spool-extra-settings", ef)
	}
	if !slices.ContainsFunc(api.Volumes, func(v corev1.Volume) bool { return v.Name == "ca-bundle" }) ||
		!slices.ContainsFunc(api.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/ssl/extra" }) {
		t.Errorf("API: no ca-bundle volume mounted at /etc/ssl/extra")
	}
	for _, name := range []string{"spool-worker", "spool-worker-emails", "spool-worker-reports"} {
		w := pods[name]
		if len(w.Containers) == 0 || !slices.ContainsFunc(w.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "reports" }) ||
			!slices.ContainsFunc(w.Containers[0].EnvFrom, func(e corev1.EnvFromSource) bool {
				return e.ConfigMapRef != nil && e.ConfigMapRef.Name == "shop-settings"
			}) {
			t.Errorf("%s: the worker's extra mount or envFrom is missing", name)
		}
	}

	if ing == nil {
		t.Fatal("no Ingress rendered")
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" || ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" ||
		len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "spool-tls" || len(ing.Spec.Rules) != 2 {
		t.Errorf("Ingress %+v: want class nginx, the annotation, TLS spool-tls and two hosts", ing.Spec)
	}
	first := ing.Spec.Rules[0].HTTP.Paths
	if len(first) != 1 || first[0].Path != "/" || *first[0].PathType != networkingv1.PathTypePrefix || first[0].Backend.Service.Name != "spool-api" || first[0].Backend.Service.Port.Name != "http" {
		t.Errorf("first host's paths %+v, want / Prefix to spool-api:http", first)
	}
}

// Mistakes in what the extras and the Ingress produce are caught by the
// checks, and impossible combinations by the render.
func TestPodExtrasAndIngressMistakes(t *testing.T) {
	t.Parallel()
	ingress := func(objs []Object) *networkingv1.Ingress {
		for _, o := range objs {
			if i, ok := o.Obj.(*networkingv1.Ingress); ok {
				return i
			}
		}
		t.Fatal("no Ingress")
		return nil
	}
	apiPod := func(objs []Object) *corev1.PodSpec {
		for _, o := range objs {
			if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == "spool-api" {
				return &d.Spec.Template.Spec
			}
		}
		t.Fatal("no spool-api")
		return nil
	}
	for _, tc := range []struct {
		name string
		edit func([]Object)
		want string
	}{
		{"backend port", func(o []Object) { ingress(o).Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name = "metrics" },
			"backend port metrics of Service spool-api is not the port to the API's http port"},
		{"backend service", func(o []Object) { ingress(o).Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "spool" },
			"backend Service spool is not rendered"},
		{"tls host", func(o []Object) {
			ingress(o).Spec.TLS[0].Hosts = append(ingress(o).Spec.TLS[0].Hosts, "other.example.com")
		},
			"TLS names host other.example.com, which no rule routes"},
		{"policy closed to the controller", func(o []Object) {
			for _, obj := range o {
				if np, ok := obj.Obj.(*networkingv1.NetworkPolicy); ok && np.Name == "spool-api" {
					np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:1] // the namespace's own pods only
				}
			}
		}, "admits no other namespace on port http"},
		{"mount without volume", func(o []Object) {
			p := apiPod(o)
			p.Volumes = slices.DeleteFunc(p.Volumes, func(v corev1.Volume) bool { return v.Name == "ca-bundle" })
		}, "container api: mounts volume ca-bundle, which the pod does not have"},
		{"sidecar unhardened", func(o []Object) { apiPod(o).Containers[1].SecurityContext.ReadOnlyRootFilesystem = nil },
			"container log-shipper"},
		{"sidecar unpinned", func(o []Object) { apiPod(o).Containers[1].Image = "example.com/log-shipper" },
			`image "example.com/log-shipper" needs a pinned tag or digest`},
		{"envFrom of a missing ConfigMap", func(o []Object) {
			for _, obj := range o {
				if d, ok := obj.Obj.(*appsv1.Deployment); ok && d.Name == "spool-worker" {
					d.Spec.Template.Spec.Containers[0].EnvFrom[1].ConfigMapRef.Name = "typo-settings"
				}
			}
		}, "envFrom ConfigMap typo-settings is not rendered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, cases[1])
			tc.edit(objs)
			if err := Check(objs, cases[1].opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got: %v", tc.want, err)
			}
		})
	}
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"ingress.enabled=true"}, "give at least one host in ingress.hosts"},
		{[]string{"ingress.enabled=true", "ingress.hosts[0].host=spool.example.com"}, "Put the controller's namespace in networkPolicy.apiAllowedNamespaces"},
	} {
		args := []string{"template", "spool", chartDir, "--kube-version", kubeVersion}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		if _, errOut, err := helm(t, args...); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("helm template %v: want an error containing %q, got err=%v\n%s", tc.set, tc.want, err, errOut)
		}
	}
	// With the controller's namespace admitted, the same Ingress renders and passes.
	objs := render(t, cases[0], "--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=spool.example.com",
		"--set", "networkPolicy.apiAllowedNamespaces={ingress-nginx}")
	if err := Check(objs, cases[0].opts); err != nil {
		t.Errorf("defaults with an Ingress: %v", err)
	}
}

// The API pods' checksum/secret does not depend on the token the chart
// generates (it is drawn anew by every include at install, and read back
// at upgrades), so the first upgrade does not roll the API for nothing;
// it does change with the configured tokens.
func TestSecretChecksumIgnoresGeneratedToken(t *testing.T) {
	t.Parallel()
	checksum := func(extra ...string) string {
		args := append([]string{"--set", "postgresql.auth.password=fixed-role-password", "--set", "postgresql.auth.postgresPassword=fixed-superuser-password"}, extra...)
		for _, o := range render(t, cases[0], args...) {
			if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == "spool-api" {
				return d.Spec.Template.Annotations["checksum/secret"]
			}
		}
		t.Fatal("no spool-api")
		return ""
	}
	first, second := checksum(), checksum()
	if first == "" || first != second {
		t.Errorf("two renders with generated tokens: checksum/secret %q and %q, want the same", first, second)
	}
	if tokens := checksum("--set", "api.auth.tokens[0].token=0123456789abcdef0123456789abcdef", "--set", "api.auth.tokens[0].scope=rw"); tokens == first {
		t.Error("configured tokens did not change checksum/secret")
	}
}
