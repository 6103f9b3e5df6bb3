package manifestcheck

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestSecureDefaults: what `helm install` with no values gives (issue 17,
// item 10): NetworkPolicies on, the diagnostic kinds off, the bundled
// database's role not the superuser, generated passwords, GOMEMLIMIT at 90%
// of the memory limit.
func TestSecureDefaults(t *testing.T) {
	objs := render(t, cases[0])
	policies := map[string]bool{}
	var dbURL, rolePassword, superPassword string
	gomem := map[string]string{}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *networkingv1.NetworkPolicy:
			policies[v.Name] = true
		case *corev1.ConfigMap:
			if v.Name == "spool-worker" && v.Data["SPOOL_DIAGNOSTIC_JOBS"] != "false" {
				t.Errorf("SPOOL_DIAGNOSTIC_JOBS = %q, want false", v.Data["SPOOL_DIAGNOSTIC_JOBS"])
			}
		case *corev1.Secret:
			switch v.Name {
			case "spool-database":
				dbURL, rolePassword = v.StringData["DATABASE_URL"], v.StringData["password"]
				if _, ok := v.StringData["POSTGRES_PASSWORD"]; ok {
					t.Error("Secret spool-database (read by every Spool pod) holds the superuser's POSTGRES_PASSWORD")
				}
			case "spool-postgresql":
				superPassword = v.StringData["POSTGRES_PASSWORD"]
			}
		case *appsv1.Deployment:
			for _, e := range v.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "GOMEMLIMIT" {
					gomem[v.Name] = e.Value
				}
			}
		}
	}
	for _, name := range []string{"spool-api", "spool-worker", "spool-postgresql"} {
		if !policies[name] {
			t.Errorf("no NetworkPolicy %s by default", name)
		}
	}
	if len(rolePassword) < 32 || len(superPassword) < 32 || rolePassword == superPassword {
		t.Errorf("generated passwords: role %d characters, superuser %d, equal %v; want two different ones of 32+", len(rolePassword), len(superPassword), rolePassword == superPassword)
	}
	if want := "postgres://spool:" + rolePassword + "@spool-postgresql.spool.svc:5432/spool?"; !strings.HasPrefix(dbURL, want) {
		t.Errorf("DATABASE_URL does not connect as spool with the role's password")
	}
	// 90% of 256Mi (API) and 512Mi (workers), rounded down to MiB.
	if gomem["spool-api"] != "230MiB" || gomem["spool-worker"] != "460MiB" {
		t.Errorf("GOMEMLIMIT: %v, want spool-api 230MiB, spool-worker 460MiB", gomem)
	}
}

// TestGoMemLimitUnits: the template reads every suffix a memory limit may
// carry, and extraEnv's GOMEMLIMIT replaces the computed one.
func TestGoMemLimitUnits(t *testing.T) {
	for limit, want := range map[string]string{
		"1Gi": "921MiB", "1G": "858MiB", "300M": "257MiB", "2.5Gi": "2304MiB", "268435456": "230MiB", "262144Ki": "230MiB",
	} {
		t.Run(limit, func(t *testing.T) {
			objs := render(t, cases[0], "--set-string", "api.resources.limits.memory="+limit)
			for _, o := range objs {
				if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == "spool-api" {
					for _, e := range d.Spec.Template.Spec.Containers[0].Env {
						if e.Name == "GOMEMLIMIT" && e.Value != want {
							t.Errorf("GOMEMLIMIT = %s, want %s", e.Value, want)
						}
					}
				}
			}
		})
	}
	objs := render(t, cases[0], "--set", "api.extraEnv[0].name=GOMEMLIMIT", "--set", "api.extraEnv[0].value=100MiB")
	for _, o := range objs {
		if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == "spool-api" {
			var got []string
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "GOMEMLIMIT" {
					got = append(got, e.Value)
				}
			}
			if len(got) != 1 || got[0] != "100MiB" {
				t.Errorf("GOMEMLIMIT entries %v, want only extraEnv's 100MiB", got)
			}
		}
	}
}

// TestDatabaseCA: database.tls.caSecret mounts the CA into every container
// that connects to PostgreSQL (API, workers, migrations, hook Job included)
// and points PGSSLROOTCERT at it.
func TestDatabaseCA(t *testing.T) {
	c := cases[2] // external-db: the hook Job
	objs := render(t, c, "--set", "database.tls.caSecret=pg-ca")
	opts := c.opts
	opts.ExternalSecrets = append(opts.ExternalSecrets, "pg-ca")
	if err := Check(objs, opts); err != nil {
		t.Errorf("checks:\n%v", err)
	}
	n := 0
	for _, w := range newIndex(objs).workloads {
		for _, ct := range append(w.template.Spec.InitContainers, w.template.Spec.Containers...) {
			if spoolRole(ct) == "" && !isMigrate(ct) {
				continue
			}
			n++
			env := map[string]string{}
			for _, e := range ct.Env {
				env[e.Name] = e.Value
			}
			if env["PGSSLROOTCERT"] != "/etc/spool-db-ca/ca.crt" || env["PGSSLMODE"] != "verify-full" {
				t.Errorf("%s container %s: PGSSLROOTCERT %q, PGSSLMODE %q", w, ct.Name, env["PGSSLROOTCERT"], env["PGSSLMODE"])
			}
			mounted := false
			for _, m := range ct.VolumeMounts {
				for _, v := range w.template.Spec.Volumes {
					if m.Name == v.Name && m.MountPath == "/etc/spool-db-ca" && v.Secret != nil && v.Secret.SecretName == "pg-ca" {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Errorf("%s container %s: Secret pg-ca not mounted at /etc/spool-db-ca", w, ct.Name)
			}
		}
	}
	if n < 4 { // api, two worker pools, the hook Job
		t.Errorf("%d containers checked, want at least 4", n)
	}
}
