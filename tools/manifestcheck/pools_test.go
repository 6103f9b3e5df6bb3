package manifestcheck

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// TestWorkerPoolOwnImage: a team's own worker image runs as a pool beside
// the stock one from the same release, with its own image, command and
// args, and the same hardening, configuration and disruption budget as the
// stock pool; the stock pool is unchanged.
func TestWorkerPoolOwnImage(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`
worker:
  pools:
    default: {}
    shop:
      image: {repository: registry.example.com/shop/shop-worker, tag: "1.4.0"}
      command: [/usr/local/bin/shop-worker]
      args: [-h]
      queues: shop:5
      replicaCount: 3
    pinned:
      image:
        repository: registry.example.com/shop/shop-worker
        digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      replicaCount: 1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := render(t, cases[0], "-f", values)
	if err := Check(objs, cases[0].opts); err != nil {
		t.Errorf("checks:\n%v", err)
	}

	deployments := map[string]*appsv1.Deployment{}
	var pdbs []*policyv1.PodDisruptionBudget
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			deployments[v.Name] = v
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, v)
		}
	}
	worker := func(name string) (*appsv1.Deployment, corev1.Container) {
		t.Helper()
		d := deployments[name]
		if d == nil {
			t.Fatalf("no Deployment %s; rendered %v", name, slices.Sorted(maps.Keys(deployments)))
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "worker" {
				return d, c
			}
		}
		t.Fatalf("%s: no container named worker", name)
		return nil, corev1.Container{}
	}

	stock, sc := worker("spool-worker")
	if want := "ghcr.io/spoolq/spool-worker:0.1.0"; sc.Image != want || sc.Command != nil || sc.Args != nil { // Chart.yaml appVersion
		t.Errorf("stock pool: image %q command %q args %q; want %q and the image's own entrypoint", sc.Image, sc.Command, sc.Args, want)
	}
	shop, c := worker("spool-worker-shop")
	if c.Image != "registry.example.com/shop/shop-worker:1.4.0" {
		t.Errorf("shop pool image %q, want registry.example.com/shop/shop-worker:1.4.0", c.Image)
	}
	if !slices.Equal(c.Command, []string{"/usr/local/bin/shop-worker"}) || !slices.Equal(c.Args, []string{"-h"}) {
		t.Errorf("shop pool command %q args %q; want [/usr/local/bin/shop-worker] [-h]", c.Command, c.Args)
	}
	if _, p := worker("spool-worker-pinned"); p.Image != "registry.example.com/shop/shop-worker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("pinned pool image %q, want the repository at the digest", p.Image)
	}

	// The same hardening and wiring as the stock pool.
	if !reflect.DeepEqual(c.SecurityContext, sc.SecurityContext) || !reflect.DeepEqual(shop.Spec.Template.Spec.SecurityContext, stock.Spec.Template.Spec.SecurityContext) {
		t.Errorf("shop pool security contexts differ from the stock pool's:\ncontainer %+v\nwant      %+v", c.SecurityContext, sc.SecurityContext)
	}
	if !reflect.DeepEqual(c.LivenessProbe, sc.LivenessProbe) || !reflect.DeepEqual(c.ReadinessProbe, sc.ReadinessProbe) || !reflect.DeepEqual(c.Ports, sc.Ports) {
		t.Errorf("shop pool probes or ports differ from the stock pool's")
	}
	if g, w := *shop.Spec.Template.Spec.TerminationGracePeriodSeconds, *stock.Spec.Template.Spec.TerminationGracePeriodSeconds; g != w {
		t.Errorf("shop pool grace period %d, want the stock pool's %d", g, w)
	}
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name)
	}
	if !slices.Contains(env, "DATABASE_URL") || !slices.Contains(env, "SPOOL_WORKER_ID") {
		t.Errorf("shop pool env %v lacks DATABASE_URL or SPOOL_WORKER_ID", env)
	}
	ix := newIndex(objs)
	if q := ix.env(c)["SPOOL_QUEUES"]; q != "shop:5" {
		t.Errorf("shop pool SPOOL_QUEUES %q, want shop:5", q)
	}
	if *shop.Spec.Replicas != 3 {
		t.Errorf("shop pool replicas %d, want 3", *shop.Spec.Replicas)
	}
	covered := false
	for _, p := range pdbs {
		if matches(p.Spec.Selector, shop.Spec.Template.Labels) {
			if matches(p.Spec.Selector, stock.Spec.Template.Labels) {
				t.Errorf("PDB %s selects both pools", p.Name)
			}
			covered = true
		}
	}
	if !covered {
		t.Error("no PodDisruptionBudget for the shop pool (3 replicas)")
	}
}
