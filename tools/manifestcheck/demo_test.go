package manifestcheck

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// spoolEnv collects the SPOOL_* settings every rendered Spool container
// gets, from ConfigMaps and from env entries, by object name.
func spoolEnv(objs []Object) map[string]map[string]string {
	out := map[string]map[string]string{}
	containers := func(name string, cs []corev1.Container) {
		for _, c := range cs {
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "SPOOL_") {
					if out[name+"/"+c.Name] == nil {
						out[name+"/"+c.Name] = map[string]string{}
					}
					out[name+"/"+c.Name][e.Name] = e.Value
				}
			}
		}
	}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.ConfigMap:
			out["configmap/"+v.Name] = v.Data
		case *appsv1.Deployment:
			containers("deployment/"+v.Name, append(v.Spec.Template.Spec.InitContainers, v.Spec.Template.Spec.Containers...))
		case *batchv1.Job:
			containers("job/"+v.Name, v.Spec.Template.Spec.Containers)
		}
	}
	return out
}

// The default install runs the product only: no demo routes, kinds or
// tables, no diagnostic kinds; every Spool setting names the same schema.
// demo.enabled turns the demo on everywhere it lives.
func TestDefaultsRenderNoDemo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		extra []string
		demo  string
	}{{"defaults", nil, "false"}, {"demo on", []string{"--set", "demo.enabled=true"}, "true"}} {
		t.Run(c.name, func(t *testing.T) {
			env := spoolEnv(render(t, cases[0], c.extra...))
			seen := map[string]int{}
			for where, vars := range env {
				if v, ok := vars["SPOOL_DEMO"]; ok {
					seen["demo"]++
					if v != c.demo {
						t.Errorf("%s: SPOOL_DEMO=%q, want %q", where, v, c.demo)
					}
				}
				if v, ok := vars["SPOOL_DIAGNOSTIC_JOBS"]; ok && v != "false" {
					t.Errorf("%s: SPOOL_DIAGNOSTIC_JOBS=%q, want the default false", where, v)
				}
				if v, ok := vars["SPOOL_DB_SCHEMA"]; ok {
					seen["schema"]++
					if v != "spool" {
						t.Errorf("%s: SPOOL_DB_SCHEMA=%q, want spool", where, v)
					}
				}
			}
			// The API's and the worker's ConfigMaps and the migration
			// containers (init containers here) must all say it.
			if seen["demo"] < 3 || seen["schema"] < 3 {
				t.Errorf("SPOOL_DEMO set in %d places, SPOOL_DB_SCHEMA in %d; want the API, the workers and the migration: %v",
					seen["demo"], seen["schema"], env)
			}
		})
	}
}
